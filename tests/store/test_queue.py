"""The durable outbound queue on SQLite and PostgreSQL: group commit, idempotency, leases, fairness."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from gravity_sms.domain.errors import Conflict
from gravity_sms.domain.ids import new_message_id
from gravity_sms.domain.outbound import NewOutbound
from gravity_sms.store import Database
from gravity_sms.store.queue import SqlOutboundQueue

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
async def queue(database: Database) -> AsyncIterator[SqlOutboundQueue]:
    q = SqlOutboundQueue(database)
    yield q
    await q.close()


def item(tenant: str = "tenant_a", number: str = "+15550000001", at: datetime = T0, **kw: str) -> NewOutbound:
    return NewOutbound(
        id=new_message_id(),
        tenant_id=tenant,
        app_id="app_1",
        user_id=None,
        from_number=number,
        to_number="+15557654321",
        body=kw.pop("body", "hi"),
        created_at=at,
        idempotency_key=kw.pop("key", None),
        fingerprint=kw.pop("fp", None),
    )


async def test_concurrent_enqueues_share_commits_and_all_land(queue: SqlOutboundQueue) -> None:
    items = [item(body=f"m{i}") for i in range(300)]
    results = await asyncio.gather(*(queue.enqueue(i) for i in items))
    assert [r.message_id for r in results] == [i.id for i in items]
    depth, _ = await queue.stats(T0)
    assert depth == 300


async def test_idempotency_replay_conflict_and_expiry(queue: SqlOutboundQueue) -> None:
    first = await queue.enqueue(item(key="k", fp="A"))
    assert not first.replayed
    again = await queue.enqueue(item(key="k", fp="A", at=T0 + timedelta(hours=23)))
    assert (again.message_id, again.replayed) == (first.message_id, True)
    with pytest.raises(Conflict, match="Idempotency-Key was already used with a different request"):
        await queue.enqueue(item(key="k", fp="B"))
    other_tenant = await queue.enqueue(item(tenant="tenant_b", key="k", fp="B"))
    assert not other_tenant.replayed
    later = await queue.enqueue(item(key="k", fp="B", at=T0 + timedelta(hours=24, seconds=1)))
    assert not later.replayed and later.message_id != first.message_id
    depth, _ = await queue.stats(T0)
    assert depth == 3


async def test_concurrent_same_key_is_one_message(queue: SqlOutboundQueue) -> None:
    results = await asyncio.gather(*(queue.enqueue(item(key="same", fp="X")) for _ in range(40)))
    assert len({r.message_id for r in results}) == 1
    assert sum(not r.replayed for r in results) == 1
    assert (await queue.stats(T0))[0] == 1


async def test_claim_leases_and_expired_leases_come_back(queue: SqlOutboundQueue) -> None:
    a = await queue.enqueue(item())
    [claimed] = await queue.claim("w1", T0, 60, 10, 10, 10)
    assert claimed.id == a.message_id and claimed.status == "queued"
    assert await queue.claim("w2", T0 + timedelta(seconds=59), 60, 10, 10, 10) == []
    assert await queue.start_attempt(a.message_id, "w1", T0, T0 + timedelta(seconds=60), "ext")
    assert not await queue.start_attempt(a.message_id, "w2", T0, T0 + timedelta(seconds=60), "ext")
    [back] = await queue.claim("w2", T0 + timedelta(seconds=61), 60, 10, 10, 10)
    assert (back.id, back.status, back.attempts, back.claimed_at) == (a.message_id, "sending", 1, T0)
    assert not await queue.mark_sent(a.message_id, "w1", "rc1", T0, T0), "w1 lost its lease"
    assert await queue.mark_sent(a.message_id, "w2", "rc1", T0, T0)


async def test_claims_are_fair_across_tenants_and_numbers(queue: SqlOutboundQueue) -> None:
    for i in range(50):
        await queue.enqueue(item(tenant="tenant_big", at=T0 + timedelta(milliseconds=i)))
    late = await queue.enqueue(item(tenant="tenant_small", at=T0 + timedelta(seconds=5)))
    now = T0 + timedelta(seconds=10)
    claimed = await queue.claim("w", now, 60, 10, per_tenant=5, per_number=5)
    assert late.message_id in {c.id for c in claimed}
    assert sum(c.tenant_id == "tenant_big" for c in claimed) == 5


async def test_per_number_cap(queue: SqlOutboundQueue) -> None:
    for i in range(10):
        await queue.enqueue(item(number="+15550000001", at=T0 + timedelta(milliseconds=i)))
        await queue.enqueue(item(number="+15550000002", at=T0 + timedelta(milliseconds=i)))
    claimed = await queue.claim("w", T0 + timedelta(seconds=1), 60, 100, per_tenant=100, per_number=3)
    assert sorted(c.from_number for c in claimed) == ["+15550000001"] * 3 + ["+15550000002"] * 3


async def test_parallel_claims_never_share_a_row(queue: SqlOutboundQueue) -> None:
    for i in range(60):
        await queue.enqueue(item(tenant=f"tenant_{i % 3}", number=f"+1555000000{i % 5}"))
    batches = await asyncio.gather(*(queue.claim(f"w{i}", T0, 60, 7, 5, 5) for i in range(8)))
    ids = [c.id for batch in batches for c in batch]
    assert len(ids) == len(set(ids))


async def test_reschedule_release_and_guarded_moves(queue: SqlOutboundQueue) -> None:
    a = (await queue.enqueue(item())).message_id
    await queue.claim("w", T0, 60, 10, 10, 10)
    await queue.start_attempt(a, "w", T0, T0 + timedelta(seconds=60), "ext")
    assert await queue.reschedule(a, "w", T0 + timedelta(seconds=8), T0, in_doubt=False)
    assert await queue.claim("w", T0 + timedelta(seconds=7), 60, 10, 10, 10) == []
    [again] = await queue.claim("w", T0 + timedelta(seconds=8), 60, 10, 10, 10)
    assert again.claimed_at is None, "nothing in doubt after a definite failure"
    assert await queue.release("w", T0 + timedelta(seconds=9)) == 1
    [third] = await queue.claim("x", T0 + timedelta(seconds=9), 60, 10, 10, 10)
    assert third.id == a
    assert await queue.mark_failed(a, "boom", T0, owner="x")
    assert not await queue.mark_failed(a, "again", T0)
    assert not await queue.mark_delivered(a, T0)
    assert await queue.claim("x", T0 + timedelta(days=1), 60, 10, 10, 10) == []


async def test_tracking_claims_and_outcomes(queue: SqlOutboundQueue) -> None:
    a = (await queue.enqueue(item())).message_id
    await queue.claim("w", T0, 60, 10, 10, 10)
    await queue.start_attempt(a, "w", T0, T0 + timedelta(seconds=60), "ext")
    await queue.mark_sent(a, "w", "rc-1", T0, T0 + timedelta(seconds=5))
    assert await queue.claim_tracking(T0, 60, 10) == []
    [tracked] = await queue.claim_tracking(T0 + timedelta(seconds=5), 60, 10)
    assert (tracked.rc_message_id, tracked.extension_id, tracked.track_until) == (
        "rc-1",
        "ext",
        T0 + timedelta(hours=24),
    )
    assert await queue.claim_tracking(T0 + timedelta(seconds=6), 60, 10) == [], "leased by the first poller"
    assert await queue.mark_delivered(a, T0)
    assert not await queue.mark_delivery_failed(a, "late", T0), "delivered never becomes failed"


async def test_stats_report_depth_and_oldest_age(queue: SqlOutboundQueue) -> None:
    assert await queue.stats(T0) == (0, 0.0)
    await queue.enqueue(item(at=T0))
    await queue.enqueue(item(at=T0 + timedelta(seconds=30)))
    assert await queue.stats(T0 + timedelta(seconds=90)) == (2, 90.0)


async def test_purge_drops_only_expired_keys(queue: SqlOutboundQueue) -> None:
    await queue.enqueue(item(key="old", fp="A", at=T0))
    await queue.enqueue(item(key="new", fp="A", at=T0 + timedelta(hours=20)))
    assert await queue.purge_idempotency_keys(T0 + timedelta(hours=1)) == 1
    replay = await queue.enqueue(item(key="new", fp="A", at=T0 + timedelta(hours=21)))
    assert replay.replayed


async def test_claim_skips_held_numbers(queue: SqlOutboundQueue) -> None:
    held = await queue.enqueue(item(number="+15550000001"))
    free = await queue.enqueue(item(number="+15550000002"))
    claimed = await queue.claim("w", T0, 60, 10, 10, 10, skip=[("tenant_a", "+15550000001")])
    assert [c.id for c in claimed] == [free.message_id]
    [later] = await queue.claim("w", T0, 60, 10, 10, 10)
    assert later.id == held.message_id
