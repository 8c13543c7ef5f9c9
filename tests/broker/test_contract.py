"""The broker contract suite: every shared-state port behaves the same on memory and on Redis.

`ports.peer` is a second node on the same backend (a second Redis client), so the Redis variant
also proves the cross-node guarantees; on memory the peer is the same process.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from gravity_sms.domain.models import AuthContext
from tests.broker.conftest import Ports

WAIT = 3.0


async def next_event(events: AsyncIterator[dict[str, Any]]) -> dict[str, Any]:
    return await asyncio.wait_for(anext(events), WAIT)


async def nothing_arrives(events: AsyncIterator[dict[str, Any]], within: float = 0.2) -> None:
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(anext(events), within)


# --- broker ------------------------------------------------------------------------------------
async def test_event_reaches_every_subscriber_in_order(ports: Ports) -> None:
    async with ports.broker.subscribe("events") as one, ports.peer.broker.subscribe("events") as two:
        for n in range(3):
            await ports.broker.publish("events", {"type": "sms_status", "n": n})
        assert [(await next_event(one))["n"] for _ in range(3)] == [0, 1, 2]
        assert [(await next_event(two))["n"] for _ in range(3)] == [0, 1, 2]
        await nothing_arrives(one)


async def test_event_published_on_another_node_arrives(ports: Ports) -> None:
    async with ports.broker.subscribe("events") as events:
        await ports.peer.broker.publish("events", {"type": "sms_inbound", "body": "héllo ✓"})
        assert await next_event(events) == {"type": "sms_inbound", "body": "héllo ✓"}


async def test_channels_are_separate(ports: Ports) -> None:
    async with ports.broker.subscribe("events") as events, ports.broker.subscribe("other") as other:
        await ports.broker.publish("other", {"type": "x"})
        assert await next_event(other) == {"type": "x"}
        await nothing_arrives(events)


async def test_leaving_a_subscription_stops_delivery(ports: Ports) -> None:
    async with ports.broker.subscribe("events") as events:
        await ports.broker.publish("events", {"n": 1})
        assert (await next_event(events))["n"] == 1
    await ports.broker.publish("events", {"n": 2})  # no subscriber: fine (may still be in flight)
    async with ports.broker.subscribe("events") as again:
        await ports.broker.publish("events", {"n": 3})
        seen = [(await next_event(again))["n"]]
        while seen[-1] != 3:
            seen.append((await next_event(again))["n"])
        assert seen in ([3], [2, 3])


# --- rate limiter ------------------------------------------------------------------------------
async def test_limit_counts_down_then_refuses_without_counting(ports: Ports) -> None:
    results = [await ports.limiter.hit("k", 3, 60.0) for _ in range(3)]
    assert [(ok, rem) for ok, rem, _ in results] == [(True, 2), (True, 1), (True, 0)]
    assert results[0][2] == pytest.approx(60.0, abs=0.01)
    ports.clock.advance(10)
    allowed, remaining, reset = await ports.limiter.hit("k", 3, 60.0)
    assert (allowed, remaining) == (False, 0)
    assert reset == pytest.approx(50.0, abs=0.01)
    count, _ = await ports.limiter.peek("k", 60.0)
    assert count == 3  # the refused hit was not counted


async def test_window_slides(ports: Ports) -> None:
    await ports.limiter.hit("k", 2, 60.0)
    ports.clock.advance(30)
    await ports.limiter.hit("k", 2, 60.0)
    assert (await ports.limiter.hit("k", 2, 60.0))[0] is False
    ports.clock.advance(30.001)  # the first hit leaves the window, the second stays
    allowed, remaining, reset = await ports.limiter.hit("k", 2, 60.0)
    assert (allowed, remaining) == (True, 0)
    assert reset == pytest.approx(30.0, abs=0.01)


async def test_limits_are_shared_between_nodes(ports: Ports) -> None:
    assert ports.peer is not None
    for n in range(4):
        limiter = ports.limiter if n % 2 else ports.peer.limiter
        assert (await limiter.hit("shared", 4, 60.0))[0]
    assert (await ports.peer.limiter.hit("shared", 4, 60.0))[0] is False
    assert (await ports.limiter.hit("shared", 4, 60.0))[0] is False


async def test_peek_reset_and_independent_keys(ports: Ports) -> None:
    assert await ports.limiter.peek("k", 60.0) == (0, 0.0)
    await ports.limiter.hit("k", 5, 60.0)
    ports.clock.advance(15)
    count, reset = await ports.limiter.peek("k", 60.0)
    assert count == 1 and reset == pytest.approx(45.0, abs=0.01)
    assert await ports.limiter.peek("other", 60.0) == (0, 0.0)
    await ports.limiter.reset("k")
    assert await ports.limiter.peek("k", 60.0) == (0, 0.0)
    assert (await ports.limiter.hit("k", 1, 60.0))[0] is True


async def test_concurrent_hits_never_exceed_the_limit(ports: Ports) -> None:
    assert ports.peer is not None
    limiters = [ports.limiter, ports.peer.limiter]
    results = await asyncio.gather(*(limiters[n % 2].hit("burst", 10, 60.0) for n in range(40)))
    assert sum(1 for ok, _, _ in results if ok) == 10


# --- key cache ---------------------------------------------------------------------------------
def _ctx(key_hash: str, tenant: str = "tenant_aaaaaaaaaaaaaaaa", status: str = "active") -> AuthContext:
    return AuthContext(
        app_id="app_0123456789abcdef", tenant_id=tenant, role="app", key_hash=key_hash, tenant_status=status
    )


async def test_key_cache_round_trip_and_invalidate_on_every_node(ports: Ports) -> None:
    assert ports.peer is not None
    assert await ports.key_cache.get("h1") is None
    await ports.key_cache.put("h1", _ctx("h1"))
    assert await ports.peer.key_cache.get("h1") == _ctx("h1")
    await ports.peer.key_cache.invalidate("h1")
    assert await ports.key_cache.get("h1") is None
    assert await ports.peer.key_cache.get("h1") is None


async def test_invalidate_tenant_drops_only_that_tenant(ports: Ports) -> None:
    other = "tenant_bbbbbbbbbbbbbbbb"
    await ports.key_cache.put("h1", _ctx("h1"))
    await ports.key_cache.put("h2", _ctx("h2"))
    await ports.key_cache.put("h3", _ctx("h3", tenant=other))
    await ports.key_cache.invalidate_tenant("tenant_aaaaaaaaaaaaaaaa")
    assert await ports.key_cache.get("h1") is None
    assert await ports.key_cache.get("h2") is None
    assert await ports.key_cache.get("h3") == _ctx("h3", tenant=other)
    await ports.key_cache.put("h1", _ctx("h1", status="suspended"))  # re-read after the change
    assert (await ports.key_cache.get("h1")).tenant_status == "suspended"


# --- token store -------------------------------------------------------------------------------
async def test_token_is_single_use_on_any_node(ports: Ports) -> None:
    assert ports.peer is not None
    await ports.tokens.put("t1", {"appId": "app_1", "role": "app"}, 60)
    assert await ports.peer.tokens.take("t1") == {"appId": "app_1", "role": "app"}
    assert await ports.tokens.take("t1") is None
    assert await ports.tokens.take("never") is None


async def test_token_expires(ports: Ports) -> None:
    await ports.tokens.put("t1", {"n": 1}, 0.2)
    await ports.tokens.put("t2", {"n": 2}, 60)
    await ports.expire(0.4)
    assert await ports.tokens.take("t1") is None
    assert await ports.tokens.take("t2") == {"n": 2}


async def test_concurrent_takes_have_one_winner(ports: Ports) -> None:
    assert ports.peer is not None
    await ports.tokens.put("t1", {"n": 1}, 60)
    stores = [ports.tokens, ports.peer.tokens]
    results = await asyncio.gather(*(stores[n % 2].take("t1") for n in range(20)))
    assert [r for r in results if r is not None] == [{"n": 1}]


# --- lock manager ------------------------------------------------------------------------------
async def test_try_lock_never_waits(ports: Ports) -> None:
    assert ports.peer is not None
    async with ports.locks.try_lock("job") as held:
        assert held is True
        async with ports.peer.locks.try_lock("job") as other:
            assert other is False
        async with ports.locks.try_lock("another-job") as unrelated:
            assert unrelated is True
    async with ports.peer.locks.try_lock("job") as again:
        assert again is True


async def test_lock_waits_for_the_holder(ports: Ports) -> None:
    assert ports.peer is not None
    order: list[str] = []
    released = asyncio.Event()

    async def holder() -> None:
        async with ports.locks.lock("refresh:ext1") as held:
            assert held
            order.append("first")
            await released.wait()
            order.append("first-done")

    task = asyncio.create_task(holder())
    while not order:
        await asyncio.sleep(0.01)

    async def waiter() -> None:
        async with ports.peer.locks.lock("refresh:ext1", ttl=5.0) as held:
            assert held
            order.append("second")

    waiting = asyncio.create_task(waiter())
    await asyncio.sleep(0.1)
    assert order == ["first"]
    released.set()
    await asyncio.wait_for(asyncio.gather(task, waiting), WAIT)
    assert order == ["first", "first-done", "second"]


async def test_lock_is_mutually_exclusive_under_contention(ports: Ports) -> None:
    assert ports.peer is not None
    inside = 0
    most = 0
    runs = 0

    async def job(n: int) -> None:
        nonlocal inside, most, runs
        locks = ports.locks if n % 2 else ports.peer.locks
        async with locks.lock("single-flight", ttl=10.0) as held:
            assert held
            inside += 1
            most = max(most, inside)
            await asyncio.sleep(0)
            runs += 1
            inside -= 1

    await asyncio.wait_for(asyncio.gather(*(job(n) for n in range(12))), 10)
    assert (most, runs) == (1, 12)
