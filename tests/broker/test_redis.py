"""Redis-only behaviour: lock leases, the server clock, and Redis being briefly unavailable.

The outage tests run their own `redis-server` on a free port and kill/restart it; PostgreSQL is
not involved (the ports never touch it), so nothing here can lose a message.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from gravity_sms.domain.clock import ManualClock
from gravity_sms.domain.errors import ServiceUnavailable
from gravity_sms.domain.models import AuthContext
from tests.broker.conftest import drop_prefix
from tests.broker.redis_server import RedisServer
from tests.conftest import REDIS_URL

pytestmark = pytest.mark.redis

redis_mod = pytest.importorskip("gravity_sms.broker.redis")


@pytest.fixture
async def client() -> AsyncIterator[Any]:
    if not REDIS_URL:
        pytest.skip("GRAVITY_TEST_REDIS_URL is not set: Redis tests not run")
    c = redis_mod.connect_redis(REDIS_URL)
    prefix = f"test:{secrets.token_hex(6)}:"
    c.test_prefix = prefix
    yield c
    await drop_prefix(c, prefix)
    await c.aclose()


async def test_a_dead_holders_lock_frees_itself_after_ttl(client: Any) -> None:
    locks = redis_mod.RedisLockManager(client, prefix=client.test_prefix)
    # A holder that died: its key exists with a lease and nobody extends it.
    await client.set(client.test_prefix + "lock:renew", "someone-else", px=300)
    async with locks.try_lock("renew") as held:
        assert held is False
    async with locks.lock("renew", ttl=2.0) as held:
        assert held is True


async def test_lock_gives_up_after_ttl(client: Any) -> None:
    locks = redis_mod.RedisLockManager(client, prefix=client.test_prefix)
    await client.set(client.test_prefix + "lock:busy", "someone-else", px=60_000)
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with locks.lock("busy", ttl=0.3) as held:
        assert held is False
    assert 0.25 <= loop.time() - started < 2.0
    assert await client.get(client.test_prefix + "lock:busy") == b"someone-else"  # untouched


async def test_a_long_job_keeps_its_lock_and_release_is_owner_only(client: Any) -> None:
    locks = redis_mod.RedisLockManager(client, prefix=client.test_prefix)
    async with locks.try_lock("long", ttl=0.3) as held:
        assert held
        await asyncio.sleep(0.7)  # longer than the lease: the watchdog extends it
        async with locks.try_lock("long", ttl=0.3) as other:
            assert other is False
        # Someone else's token cannot release it.
        await client.set(client.test_prefix + "lock:long", "thief", px=5000)
    # Our release did not delete the thief's lease (compare-and-delete).
    assert await client.get(client.test_prefix + "lock:long") == b"thief"


async def test_rate_limit_on_the_redis_server_clock(client: Any) -> None:
    limiter = redis_mod.RedisRateLimiter(client, prefix=client.test_prefix)  # no clock: Redis TIME
    assert (await limiter.hit("k", 2, 0.3))[:2] == (True, 1)
    assert (await limiter.hit("k", 2, 0.3))[:2] == (True, 0)
    allowed, _, reset = await limiter.hit("k", 2, 0.3)
    assert allowed is False and 0 < reset <= 0.3
    await asyncio.sleep(reset + 0.05)
    assert (await limiter.hit("k", 2, 0.3))[0] is True


async def test_a_stale_put_after_invalidation_is_refused(client: Any) -> None:
    cache = redis_mod.RedisKeyCache(client, prefix=client.test_prefix)
    ctx = AuthContext(app_id="app_0123456789abcdef", tenant_id="tenant_aaaaaaaaaaaaaaaa", role="app", key_hash="h")
    await cache.invalidate("h")  # the key was rotated …
    await cache.put("h", ctx)  # … while a request that read the database earlier re-caches it
    assert await cache.get("h") is None


# --- Redis briefly unavailable ---------------------------------------------------------------
@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.kill()


async def test_outage_degrades_each_port_in_its_documented_direction(private_redis: RedisServer) -> None:
    client = redis_mod.connect_redis(private_redis.url)
    clock = ManualClock()
    limiter = redis_mod.RedisRateLimiter(client, clock=clock)
    cache = redis_mod.RedisKeyCache(client)
    tokens = redis_mod.RedisTokenStore(client)
    locks = redis_mod.RedisLockManager(client)
    ctx = AuthContext(app_id="app_0123456789abcdef", tenant_id="tenant_aaaaaaaaaaaaaaaa", role="app", key_hash="h")
    try:
        assert (await limiter.hit("k", 1, 60))[0] is True
        assert (await limiter.hit("k", 1, 60))[0] is False
        await cache.put("h", ctx)
        private_redis.kill()

        # Rate limits fail open, quickly.
        loop = asyncio.get_running_loop()
        started = loop.time()
        assert (await limiter.hit("k", 1, 60))[0] is True
        assert await limiter.peek("authblock:1.2.3.4", 900) == (0, 0.0)
        assert loop.time() - started < 1.0
        # The key cache misses (the caller reads the database); invalidations are remembered.
        assert await cache.get("h") is None
        await cache.invalidate("h")
        # Tokens cannot be issued; nothing can be taken.
        with pytest.raises(ServiceUnavailable):
            await tokens.put("t", {"n": 1}, 60)
        assert await tokens.take("t") is None
        # Locks fail closed.
        async with locks.try_lock("job") as held:
            assert held is False
        async with locks.lock("job", ttl=0.2) as held:
            assert held is False

        # Redis is back with its data (a network blip, not a restart): simulate by re-caching the
        # entry another node had put, then check our pending invalidation is replayed first.
        private_redis.start()
        await client.set(
            "gravity:key:h", b'{"a":"app_0123456789abcdef","t":"tenant_aaaaaaaaaaaaaaaa","r":"app","s":"active"}'
        )
        assert await cache.get("h") is None
        assert await client.get("gravity:key:h") is None
        assert (await limiter.hit("k", 1, 60))[0] is True
        await tokens.put("t", {"n": 1}, 60)
        assert await tokens.take("t") == {"n": 1}
        async with locks.try_lock("job") as held:
            assert held is True
    finally:
        await client.aclose()


async def test_events_resume_after_redis_returns(private_redis: RedisServer) -> None:
    sub_client, pub_client = redis_mod.connect_redis(private_redis.url), redis_mod.connect_redis(private_redis.url)
    subscriber, publisher = redis_mod.RedisBroker(sub_client), redis_mod.RedisBroker(pub_client)
    try:
        async with subscriber.subscribe("gravity.events") as events:
            await publisher.publish("gravity.events", {"n": 1})
            assert (await asyncio.wait_for(anext(events), 3))["n"] == 1
            private_redis.kill()
            await publisher.publish("gravity.events", {"n": 2})  # dropped and logged, never raises
            private_redis.start()
            # The subscriber reconnects with backoff; publish until an event gets through.
            received: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

            async def collect() -> None:
                async for event in events:
                    received.put_nowait(event)

            collector = asyncio.create_task(collect())
            for n in range(3, 100):
                await publisher.publish("gravity.events", {"n": n})
                if not received.empty():
                    break
                await asyncio.sleep(0.1)
            collector.cancel()
            # What matters is that events flow again; whether our reader or redis-py's own
            # reconnect-and-resubscribe restored the connection depends on timing.
            assert not received.empty() and received.get_nowait()["n"] >= 3
    finally:
        await subscriber.close()
        await publisher.close()
        await sub_client.aclose()
        await pub_client.aclose()
