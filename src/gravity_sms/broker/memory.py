"""In-process implementations of the shared-state ports, for the single-node default.

Everything here lives in one process; a cluster swaps in `gravity_sms.broker.redis`.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict, deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from gravity_sms.domain.clock import Clock, SystemClock
from gravity_sms.domain.models import AuthContext

SUBSCRIBER_BUFFER = 10_000


class MemoryBroker:
    """Fan-out to in-process subscribers; each has a bounded queue (oldest events dropped past it)."""

    def __init__(self) -> None:
        self._subscribers: dict[str, set[asyncio.Queue[dict[str, Any]]]] = defaultdict(set)

    async def publish(self, channel: str, event: dict[str, Any]) -> None:
        for queue in list(self._subscribers.get(channel, ())):
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(event)

    @asynccontextmanager
    async def subscribe(self, channel: str) -> AsyncIterator[AsyncIterator[dict[str, Any]]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(SUBSCRIBER_BUFFER)
        self._subscribers[channel].add(queue)

        async def events() -> AsyncIterator[dict[str, Any]]:
            while True:
                yield await queue.get()

        try:
            yield events()
        finally:
            self._subscribers[channel].discard(queue)

    async def close(self) -> None:
        self._subscribers.clear()


class MemoryRateLimiter:
    """Sliding-window log per key (timestamps of counted hits)."""

    def __init__(self, clock: Clock | None = None) -> None:
        self.clock = clock or SystemClock()
        self._hits: dict[str, deque[float]] = {}

    def _window(self, key: str, window: float) -> deque[float]:
        now = self.clock.monotonic()
        hits = self._hits.setdefault(key, deque())
        while hits and hits[0] <= now - window:
            hits.popleft()
        return hits

    async def hit(self, key: str, limit: int, window: float) -> tuple[bool, int, float]:
        hits = self._window(key, window)
        now = self.clock.monotonic()
        if len(hits) >= limit:
            return False, 0, max(0.0, hits[0] + window - now)
        hits.append(now)
        reset = hits[0] + window - now
        return True, limit - len(hits), max(0.0, reset)

    async def peek(self, key: str, window: float) -> tuple[int, float]:
        hits = self._window(key, window)
        if not hits:
            return 0, 0.0
        return len(hits), max(0.0, hits[0] + window - self.clock.monotonic())

    async def reset(self, key: str) -> None:
        self._hits.pop(key, None)


class MemoryKeyCache:
    """Key hash → context. A rotated-out or deleted key's hash is remembered as dead, so a lookup
    that read the database just before the rotation cannot put the old key back afterwards."""

    def __init__(self) -> None:
        self._by_hash: dict[str, AuthContext] = {}
        self._dead: set[str] = set()

    async def get(self, key_hash: str) -> AuthContext | None:
        return self._by_hash.get(key_hash)

    async def put(self, key_hash: str, ctx: AuthContext) -> None:
        if key_hash not in self._dead:
            self._by_hash[key_hash] = ctx

    async def invalidate(self, key_hash: str) -> None:
        # Hashes of random 128-bit keys never come back: remembering them costs 64 bytes a rotation.
        self._dead.add(key_hash)
        self._by_hash.pop(key_hash, None)

    async def invalidate_tenant(self, tenant_id: str) -> None:
        for key_hash, ctx in list(self._by_hash.items()):
            if ctx.tenant_id == tenant_id:
                del self._by_hash[key_hash]


class MemoryTokenStore:
    def __init__(self, clock: Clock | None = None) -> None:
        self.clock = clock or SystemClock()
        self._tokens: dict[str, tuple[float, dict[str, Any]]] = {}

    async def put(self, token: str, value: dict[str, Any], ttl: float) -> None:
        now = self.clock.monotonic()
        for key in [k for k, (exp, _) in self._tokens.items() if exp <= now]:
            del self._tokens[key]
        self._tokens[token] = (now + ttl, value)

    async def take(self, token: str) -> dict[str, Any] | None:
        entry = self._tokens.pop(token, None)
        if entry is None or entry[0] <= self.clock.monotonic():
            return None
        return entry[1]


class MemoryLockManager:
    """asyncio locks by name. `lock()` waits at most `ttl` seconds, like the Redis implementation,
    and then yields False instead of holding."""

    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    @asynccontextmanager
    async def lock(self, name: str, ttl: float = 30.0) -> AsyncIterator[bool]:
        lock = self._locks[name]
        try:
            await asyncio.wait_for(lock.acquire(), timeout=ttl)
        except TimeoutError:
            yield False
            return
        try:
            yield True
        finally:
            lock.release()

    @asynccontextmanager
    async def try_lock(self, name: str, ttl: float = 30.0) -> AsyncIterator[bool]:
        lock = self._locks[name]
        if lock.locked():
            yield False
            return
        async with lock:
            yield True
