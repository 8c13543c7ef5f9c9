"""Redis implementations of the shared-state ports, for a cluster (operations.md §4).

PostgreSQL stays the source of truth; Redis only carries what several nodes must agree on right
now: event pub/sub, rate-limit windows, the API-key cache, WebSocket tokens and locks. Every key
and channel lives under one prefix (default `gravity:`) so tests and several deployments can share
one Redis.

When Redis is briefly unavailable nothing accepted is lost, and each port degrades in a chosen,
documented direction (docs/deployment.md, "Redis outages"):
- broker: `publish` logs and drops (the event's message is stored; clients can list it); the one
  subscriber connection per node reconnects with backoff and events resume.
- rate limiter: fails OPEN (allows). Refusing every request because a counter store is down would
  turn a cache outage into a full API outage; the per-key limit is a fairness guard, not a
  security boundary, and PostgreSQL still absorbs the load.
- key cache: misses fall back to the database; an invalidation that could not reach Redis is
  retried before this node trusts Redis again, and entries expire after `KEY_CACHE_TTL` anyway.
- token store: `put` raises `ServiceUnavailable` (no token is better than one no node can find).
- locks: fail CLOSED (`held` is False): no periodic job runs without its lock.

This module must not import the store or the RingCentral client (import-linter).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import RedisError

from gravity_sms.domain.clock import Clock
from gravity_sms.domain.errors import ServiceUnavailable
from gravity_sms.domain.models import AuthContext
from gravity_sms.telemetry import get_logger

DEFAULT_PREFIX = "gravity:"
SUBSCRIBER_BUFFER = 10_000
KEY_CACHE_TTL = 60.0
RECONNECT_MIN = 0.05
RECONNECT_MAX = 5.0
SUBSCRIBE_WAIT = 2.0
LOCK_POLL = 0.05

log = get_logger("gravity.broker")

# Errors that mean "Redis is not answering" (refused, reset, timed out) as opposed to a bug.
REDIS_DOWN: tuple[type[BaseException], ...] = (RedisError, OSError, asyncio.TimeoutError)


def connect_redis(url: str, *, max_connections: int = 64) -> Redis:
    """A client that fails fast when Redis is down (one quick retry, short timeouts, so fallbacks
    kick in at once) but queues briefly for a pooled connection under a burst instead of failing
    (a burst of WebSocket auths must not look like an outage)."""
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=2.0,
        socket_connect_timeout=1.0,
        socket_timeout=2.0,
        retry=Retry(ExponentialBackoff(cap=0.05, base=0.01), 1),
        health_check_interval=30,
    )
    return Redis.from_pool(pool)  # the client owns the pool: aclose() closes it


class _Throttled:
    """Logs a degraded-mode warning at most once per interval (an outage must not flood the logs)."""

    def __init__(self, event: str, interval: float = 10.0) -> None:
        self.event = event
        self.interval = interval
        self._last = -1e9

    def warn(self, exc: BaseException, **fields: Any) -> None:
        now = time.monotonic()
        if now - self._last >= self.interval:
            self._last = now
            log.warning(self.event, error=type(exc).__name__, **fields)


def _glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


class RedisBroker:
    """Pub/sub with ONE subscriber connection per node, shared by every local subscriber.

    The node pattern-subscribes to `<prefix>*` once (lazily, on the first `subscribe()`), and a
    reader task dispatches each message to the local queues of its channel. When the connection
    drops, the reader reconnects with exponential backoff; events published meanwhile are missed
    (their messages are in PostgreSQL), later ones flow again.
    """

    def __init__(self, redis: Redis, *, prefix: str = DEFAULT_PREFIX) -> None:
        self.redis = redis
        self.prefix = prefix
        self._local: dict[str, set[asyncio.Queue[dict[str, Any]]]] = defaultdict(set)
        self._reader: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self._publish_warning = _Throttled("broker.publish_failed")
        self.reconnects = 0

    async def publish(self, channel: str, event: dict[str, Any]) -> None:
        try:
            await self.redis.publish(self.prefix + channel, orjson.dumps(event))
        except REDIS_DOWN as exc:
            self._publish_warning.warn(exc, channel=channel, type=event.get("type"))

    @asynccontextmanager
    async def subscribe(self, channel: str) -> AsyncIterator[AsyncIterator[dict[str, Any]]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(SUBSCRIBER_BUFFER)
        self._local[channel].add(queue)
        if self._reader is None or self._reader.done():
            self._reader = asyncio.create_task(self._read(), name="redis-broker-reader")
        # Wait (bounded) until the node's subscription is live, so a publish made after
        # `subscribe()` returned is seen. If Redis is down, carry on: events resume later.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._ready.wait(), SUBSCRIBE_WAIT)

        async def events() -> AsyncIterator[dict[str, Any]]:
            while True:
                yield await queue.get()

        try:
            yield events()
        finally:
            self._local[channel].discard(queue)
            if not self._local[channel]:
                del self._local[channel]

    def _dispatch(self, raw_channel: bytes, data: bytes) -> None:
        channel = raw_channel.decode()[len(self.prefix) :]
        queues = self._local.get(channel)
        if not queues:
            return
        try:
            event = orjson.loads(data)
        except orjson.JSONDecodeError:
            log.warning("broker.bad_event", channel=channel)
            return
        for queue in list(queues):
            if queue.full():
                queue.get_nowait()  # drop the oldest: a stuck consumer must not grow memory
            queue.put_nowait(event)

    async def _read(self) -> None:
        delay = RECONNECT_MIN
        pattern = _glob_escape(self.prefix) + "*"
        while True:
            pubsub: PubSub = self.redis.pubsub()
            try:
                await pubsub.psubscribe(pattern)
                while True:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is None:
                        continue
                    kind = message["type"]
                    if kind == "psubscribe":
                        if self.reconnects or delay > RECONNECT_MIN:
                            log.info("broker.resubscribed")
                        self._ready.set()
                        delay = RECONNECT_MIN
                    elif kind == "pmessage":
                        self._dispatch(message["channel"], message["data"])
            except asyncio.CancelledError:
                raise
            except REDIS_DOWN as exc:
                self._ready.clear()
                self.reconnects += 1
                if self.reconnects == 1 or delay >= RECONNECT_MAX:
                    log.warning("broker.subscriber_disconnected", error=type(exc).__name__, retry_in=delay)
                await asyncio.sleep(delay)
                delay = min(RECONNECT_MAX, delay * 2)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
            self._reader = None
        self._local.clear()


# Sliding-window log on a sorted set. Scores are microseconds; members are unique per hit.
# ARGV: limit, window_us, now_us ('' = use the Redis server's TIME), member.
_HIT = """
local now = tonumber(ARGV[3])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local count = redis.call('ZCARD', KEYS[1])
if count >= limit then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  local reset = 0
  if oldest[2] then reset = tonumber(oldest[2]) + window - now end
  return {0, 0, reset}
end
redis.call('ZADD', KEYS[1], now, ARGV[4])
redis.call('PEXPIRE', KEYS[1], math.ceil(window / 1000) + 1)
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {1, limit - count - 1, tonumber(oldest[2]) + window - now}
"""

_PEEK = """
local now = tonumber(ARGV[2])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local window = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local count = redis.call('ZCARD', KEYS[1])
if count == 0 then return {0, 0} end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {count, tonumber(oldest[2]) + window - now}
"""


class RedisRateLimiter:
    """The same sliding-window semantics as `MemoryRateLimiter`, shared by every node.

    Time: the Redis server's `TIME` by default, so nodes with skewed clocks still agree on one
    window; when a clock is injected (tests, or an operator who prefers node time) its wall time
    is used instead. Fails OPEN when Redis is unreachable (module docstring).
    """

    def __init__(self, redis: Redis, *, prefix: str = DEFAULT_PREFIX, clock: Clock | None = None) -> None:
        self.redis = redis
        self.prefix = prefix + "rl:"
        self.clock = clock
        self._hit = redis.register_script(_HIT)
        self._peek = redis.register_script(_PEEK)
        self._warning = _Throttled("ratelimit.redis_unavailable")

    def _now(self) -> str:
        if self.clock is None:
            return ""
        return str(int(self.clock.now().timestamp() * 1_000_000))

    async def hit(self, key: str, limit: int, window: float) -> tuple[bool, int, float]:
        window_us = int(window * 1_000_000)
        try:
            allowed, remaining, reset = await self._hit(
                keys=[self.prefix + key], args=[limit, window_us, self._now(), secrets.token_hex(8)]
            )
        except REDIS_DOWN as exc:
            self._warning.warn(exc, op="hit")
            return True, max(0, limit - 1), 0.0
        return bool(allowed), int(remaining), max(0.0, int(reset) / 1_000_000)

    async def peek(self, key: str, window: float) -> tuple[int, float]:
        try:
            count, reset = await self._peek(keys=[self.prefix + key], args=[int(window * 1_000_000), self._now()])
        except REDIS_DOWN as exc:
            self._warning.warn(exc, op="peek")
            return 0, 0.0
        return int(count), max(0.0, int(reset) / 1_000_000)

    async def reset(self, key: str) -> None:
        try:
            await self.redis.delete(self.prefix + key)
        except REDIS_DOWN as exc:
            self._warning.warn(exc, op="reset")


# put: refuse to cache a hash that was invalidated recently (a request that read the database just
# before a rotation must not re-cache the old key after the invalidation).
_CACHE_PUT = """
if redis.call('EXISTS', KEYS[3]) == 1 then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('SADD', KEYS[2], ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return 1
"""
_CACHE_INVALIDATE_TENANT = """
local hashes = redis.call('SMEMBERS', KEYS[1])
for _, h in ipairs(hashes) do redis.call('DEL', ARGV[1] .. h) end
redis.call('DEL', KEYS[1])
return #hashes
"""


class RedisKeyCache:
    """API-key hash → AuthContext with a TTL, and a per-tenant index set for `invalidate_tenant`.

    `invalidate` deletes at once and leaves a tombstone for one TTL, so the next request on any
    node is refused. If Redis is unreachable, lookups miss (the caller reads the database) and
    invalidations are queued and replayed before this node reads from Redis again.
    """

    def __init__(self, redis: Redis, *, prefix: str = DEFAULT_PREFIX, ttl: float = KEY_CACHE_TTL) -> None:
        self.redis = redis
        self.prefix = prefix + "key:"
        self.dead_prefix = prefix + "keydead:"
        self.tenant_prefix = prefix + "tenantkeys:"
        self.ttl_ms = int(ttl * 1000)
        self._put = redis.register_script(_CACHE_PUT)
        self._invalidate_tenant = redis.register_script(_CACHE_INVALIDATE_TENANT)
        self._pending: list[tuple[str, str]] = []
        self._warning = _Throttled("keycache.redis_unavailable")

    async def _flush_pending(self) -> bool:
        while self._pending:
            kind, value = self._pending[0]
            try:
                if kind == "key":
                    await self._do_invalidate(value)
                else:
                    await self._invalidate_tenant(keys=[self.tenant_prefix + value], args=[self.prefix])
            except REDIS_DOWN as exc:
                self._warning.warn(exc, op="flush")
                return False
            self._pending.pop(0)
        return True

    async def get(self, key_hash: str) -> AuthContext | None:
        if self._pending and not await self._flush_pending():
            return None
        try:
            raw = await self.redis.get(self.prefix + key_hash)
        except REDIS_DOWN as exc:
            self._warning.warn(exc, op="get")
            return None
        if raw is None:
            return None
        data = orjson.loads(raw)
        return AuthContext(
            app_id=data["a"], tenant_id=data["t"], role=data["r"], key_hash=key_hash, tenant_status=data["s"]
        )

    async def put(self, key_hash: str, ctx: AuthContext) -> None:
        if self._pending and not await self._flush_pending():
            return
        value = orjson.dumps({"a": ctx.app_id, "t": ctx.tenant_id, "r": ctx.role, "s": ctx.tenant_status})
        try:
            await self._put(
                keys=[self.prefix + key_hash, self.tenant_prefix + ctx.tenant_id, self.dead_prefix + key_hash],
                args=[value, self.ttl_ms, key_hash],
            )
        except REDIS_DOWN as exc:
            self._warning.warn(exc, op="put")

    async def _do_invalidate(self, key_hash: str) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(self.prefix + key_hash)
            pipe.set(self.dead_prefix + key_hash, b"1", px=self.ttl_ms)
            await pipe.execute()

    async def invalidate(self, key_hash: str) -> None:
        try:
            await self._do_invalidate(key_hash)
        except REDIS_DOWN as exc:
            self._warning.warn(exc, op="invalidate")
            self._pending.append(("key", key_hash))

    async def invalidate_tenant(self, tenant_id: str) -> None:
        try:
            await self._invalidate_tenant(keys=[self.tenant_prefix + tenant_id], args=[self.prefix])
        except REDIS_DOWN as exc:
            self._warning.warn(exc, op="invalidate_tenant")
            self._pending.append(("tenant", tenant_id))


class RedisTokenStore:
    """Single-use tokens: `SET … PX` and an atomic `GETDEL` (Redis ≥ 6.2)."""

    def __init__(self, redis: Redis, *, prefix: str = DEFAULT_PREFIX) -> None:
        self.redis = redis
        self.prefix = prefix + "token:"

    async def put(self, token: str, value: dict[str, Any], ttl: float) -> None:
        try:
            await self.redis.set(self.prefix + token, orjson.dumps(value), px=max(1, int(ttl * 1000)))
        except REDIS_DOWN as exc:
            log.warning("tokens.redis_unavailable", op="put", error=type(exc).__name__)
            raise ServiceUnavailable("Service temporarily unavailable") from exc

    async def take(self, token: str) -> dict[str, Any] | None:
        try:
            raw = await self.redis.getdel(self.prefix + token)
        except REDIS_DOWN as exc:
            log.warning("tokens.redis_unavailable", op="take", error=type(exc).__name__)
            return None
        if raw is None:
            return None
        value: dict[str, Any] = orjson.loads(raw)
        return value


_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
_EXTEND = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""


class RedisLockManager:
    """`SET NX PX` with a random token; release and extension by compare-and-act Lua scripts.

    While held, a watchdog extends the lease every ttl/3 so a long job keeps its lock; a holder
    that dies stops extending and the lock frees itself after ttl. Fails CLOSED: when Redis is
    unreachable `held` is False and the caller skips its job.
    """

    def __init__(self, redis: Redis, *, prefix: str = DEFAULT_PREFIX) -> None:
        self.redis = redis
        self.prefix = prefix + "lock:"
        self._release = redis.register_script(_RELEASE)
        self._extend = redis.register_script(_EXTEND)

    async def _acquire(self, key: str, token: str, ttl_ms: int) -> bool:
        try:
            return bool(await self.redis.set(key, token, nx=True, px=ttl_ms))
        except REDIS_DOWN as exc:
            log.warning("locks.redis_unavailable", error=type(exc).__name__)
            return False

    async def _watchdog(self, key: str, token: str, ttl_ms: int) -> None:
        while True:
            await asyncio.sleep(ttl_ms / 3000)
            try:
                if not await self._extend(keys=[key], args=[token, ttl_ms]):
                    log.warning("locks.lost", lock=key[len(self.prefix) :])
                    return
            except REDIS_DOWN as exc:
                log.warning("locks.extend_failed", error=type(exc).__name__)

    @asynccontextmanager
    async def _held(self, key: str, token: str, ttl_ms: int) -> AsyncIterator[bool]:
        watchdog = asyncio.create_task(self._watchdog(key, token, ttl_ms), name="redis-lock-watchdog")
        try:
            yield True
        finally:
            watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watchdog
            try:
                await self._release(keys=[key], args=[token])
            except REDIS_DOWN as exc:
                # The lease expires by itself after ttl.
                log.warning("locks.release_failed", error=type(exc).__name__)

    @asynccontextmanager
    async def lock(self, name: str, ttl: float = 30.0) -> AsyncIterator[bool]:
        key, token, ttl_ms = self.prefix + name, secrets.token_hex(16), max(1, int(ttl * 1000))
        deadline = asyncio.get_running_loop().time() + ttl
        while not await self._acquire(key, token, ttl_ms):
            if asyncio.get_running_loop().time() >= deadline:
                yield False
                return
            await asyncio.sleep(LOCK_POLL)
        async with self._held(key, token, ttl_ms) as held:
            yield held

    @asynccontextmanager
    async def try_lock(self, name: str, ttl: float = 30.0) -> AsyncIterator[bool]:
        key, token, ttl_ms = self.prefix + name, secrets.token_hex(16), max(1, int(ttl * 1000))
        if not await self._acquire(key, token, ttl_ms):
            yield False
            return
        async with self._held(key, token, ttl_ms) as held:
            yield held
