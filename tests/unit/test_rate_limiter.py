"""The in-process sliding-window limiter and key cache, driven by a ManualClock."""

from __future__ import annotations

from gravity_sms.broker.memory import MemoryKeyCache, MemoryRateLimiter
from gravity_sms.domain.clock import ManualClock
from gravity_sms.domain.models import AuthContext


async def test_sliding_window_counts_and_frees_slots_one_by_one() -> None:
    clock = ManualClock()
    limiter = MemoryRateLimiter(clock)
    assert await limiter.hit("k", 3, 60) == (True, 2, 60)
    clock.advance(10)
    assert await limiter.hit("k", 3, 60) == (True, 1, 50)
    clock.advance(10)
    assert await limiter.hit("k", 3, 60) == (True, 0, 40)
    allowed, remaining, reset = await limiter.hit("k", 3, 60)
    assert (allowed, remaining, reset) == (False, 0, 40)  # refused hits are not counted
    clock.advance(40)  # the first hit leaves the window: exactly one slot frees
    assert (await limiter.hit("k", 3, 60))[0] is True
    assert (await limiter.hit("k", 3, 60))[0] is False
    assert await limiter.peek("k", 60) == (3, 10)


async def test_keys_are_independent_and_reset_clears() -> None:
    clock = ManualClock()
    limiter = MemoryRateLimiter(clock)
    assert (await limiter.hit("a", 1, 60))[0]
    assert not (await limiter.hit("a", 1, 60))[0]
    assert (await limiter.hit("b", 1, 60))[0]
    await limiter.reset("a")
    assert await limiter.peek("a", 60) == (0, 0.0)
    assert (await limiter.hit("a", 1, 60))[0]


async def test_a_window_is_not_a_fixed_bucket() -> None:
    """100 hits at the end of one minute and 100 at the start of the next are not 200 allowed."""
    clock = ManualClock()
    limiter = MemoryRateLimiter(clock)
    clock.advance(59)
    for _ in range(100):
        assert (await limiter.hit("k", 100, 60))[0]
    clock.advance(2)
    assert not (await limiter.hit("k", 100, 60))[0]


def _ctx(key_hash: str, tenant: str = "tenant_0000000000000001") -> AuthContext:
    return AuthContext(app_id="app_0000000000000001", tenant_id=tenant, role="app", key_hash=key_hash)


async def test_key_cache_invalidation_is_final() -> None:
    cache = MemoryKeyCache()
    await cache.put("h1", _ctx("h1"))
    assert await cache.get("h1") == _ctx("h1")
    await cache.invalidate("h1")
    assert await cache.get("h1") is None
    # A lookup that read the database before the rotation cannot resurrect the old key.
    await cache.put("h1", _ctx("h1"))
    assert await cache.get("h1") is None


async def test_key_cache_tenant_invalidation() -> None:
    cache = MemoryKeyCache()
    await cache.put("h1", _ctx("h1", "tenant_000000000000000a"))
    await cache.put("h2", _ctx("h2", "tenant_000000000000000b"))
    await cache.invalidate_tenant("tenant_000000000000000a")
    assert await cache.get("h1") is None
    assert await cache.get("h2") is not None
    await cache.put("h1", _ctx("h1", "tenant_000000000000000a"))  # a status change does not kill keys
    assert await cache.get("h1") is not None
