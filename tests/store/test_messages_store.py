"""The message store on both databases: race-free inbound dedup, the fan-out outbox leases,
retention in batches, the delivery log's memory of attempted targets, and the listing's `total`
(exact up to EXACT_COUNT_LIMIT, a background-refreshed count past it)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, insert, select

from gravity_sms.domain.clock import ManualClock
from gravity_sms.domain.fanout import Delivery
from gravity_sms.domain.history import MessageQuery
from gravity_sms.domain.ids import new_message_id
from gravity_sms.domain.models import Message
from gravity_sms.store import Database, SqlStore
from gravity_sms.store.messages import COUNT_REFRESH_SECONDS, EXACT_COUNT_LIMIT, SqlMessageStore
from gravity_sms.store.tables import delivery_log, messages

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def inbound(rc_id: str, tenant: str = "tenant_a", at: datetime = T0) -> Message:
    return Message(
        id=new_message_id(),
        tenant_id=tenant,
        direction="inbound",
        status="received",
        from_number="+15551234567",
        to_number="+15559876543",
        body="hi",
        created_at=at,
        updated_at=at,
        rc_message_id=rc_id,
    )


async def count(db: Database, table: Any = messages) -> int:
    async with db.read() as c:
        return int((await c.execute(select(func.count()).select_from(table))).scalar_one())


async def test_concurrent_duplicates_insert_one_row(database: Database) -> None:
    store = SqlStore(database).messages
    results = await asyncio.gather(
        *(store.insert_inbound(inbound("rc-1"), lease_owner=None, lease_seconds=0) for _ in range(10))
    )
    assert sum(r is not None for r in results) == 1
    assert await count(database) == 1
    assert (await store.find_inbound("tenant_a", "rc-1")) is not None
    assert await store.insert_inbound(inbound("rc-1", tenant="tenant_b"), lease_owner=None, lease_seconds=0)


async def test_outbound_rows_do_not_block_an_inbound_rc_id(database: Database) -> None:
    store = SqlStore(database).messages
    async with database.write() as c:
        await c.execute(
            insert(messages).values(
                id=new_message_id(),
                tenant_id="tenant_a",
                direction="outbound",
                status="sent",
                from_number="+15559876543",
                to_number="+15551234567",
                body="x",
                rc_message_id="rc-9",
                created_at=T0,
                updated_at=T0,
            )
        )
    assert await store.insert_inbound(inbound("rc-9"), lease_owner=None, lease_seconds=0) is not None


async def test_message_id_collision_is_retried(database: Database) -> None:
    store = SqlStore(database).messages
    first = await store.insert_inbound(inbound("rc-1"), lease_owner=None, lease_seconds=0)
    assert first is not None
    clash = Message(**{**{f: getattr(inbound("rc-2"), f) for f in Message.__dataclass_fields__}, "id": first.id})
    second = await store.insert_inbound(clash, lease_owner=None, lease_seconds=0)
    assert second is not None and second.id != first.id


async def test_a_collision_in_a_shared_batch_fails_no_neighbour(database: Database) -> None:
    store = SqlStore(database).messages
    first = await store.insert_inbound(inbound("rc-1"), lease_owner=None, lease_seconds=0)
    assert first is not None
    clash = Message(**{**{f: getattr(inbound("rc-3"), f) for f in Message.__dataclass_fields__}, "id": first.id})
    results = await asyncio.gather(
        *(
            store.insert_inbound(m, lease_owner=None, lease_seconds=0)
            for m in (inbound("rc-2"), clash, inbound("rc-4"), inbound("rc-1"))
        )
    )
    assert [r is not None for r in results] == [True, True, True, False]  # rc-1 is a duplicate
    assert results[1] is not None and results[1].id != first.id
    assert await count(database) == 4


async def test_message_writes_leave_the_route_cache_valid(database: Database) -> None:
    store = SqlStore(database).messages
    epoch = database.epoch
    stored = await store.insert_inbound(inbound("rc-1"), lease_owner="node", lease_seconds=30)
    assert stored is not None
    await store.finish_fanout([stored.id])
    assert database.epoch == epoch  # messages only: cached inbound routes stay valid
    async with database.write() as c:  # any other write (a subscription, a tenant) ends them
        await c.execute(select(1))
    assert database.epoch == epoch + 1


async def test_the_outbox_scan_reads_its_partial_index(database: Database) -> None:
    query = SqlMessageStore.pending_fanout_query(T0, T0, 200)
    async with database.read() as c:
        if database.is_sqlite:
            compiled = query.compile(dialect=c.dialect, compile_kwargs={"literal_binds": True})
            plan = " ".join(str(r[-1]) for r in (await c.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}")).all())
        else:
            await c.exec_driver_sql("SET enable_seqscan = off")
            compiled = query.compile(dialect=c.dialect, compile_kwargs={"literal_binds": True})
            plan = " ".join(str(r[0]) for r in (await c.exec_driver_sql(f"EXPLAIN {compiled}")).all())
    # A full scan of messages every 5 s would cost seconds on a large table.
    assert "ix_messages_fanout" in plan, plan


async def test_two_dispatchers_never_claim_the_same_message(database: Database) -> None:
    store = SqlStore(database).messages
    for i in range(20):
        await store.insert_inbound(inbound(f"rc-{i}"), lease_owner=None, lease_seconds=0)
    now = T0 + timedelta(seconds=10)
    a, b = await asyncio.gather(
        store.claim_fanout("node-a", now, now, 30, 15), store.claim_fanout("node-b", now, now, 30, 15)
    )
    ids_a, ids_b = {m.id for m in a}, {m.id for m in b}
    assert not ids_a & ids_b
    assert len(ids_a | ids_b) == 20
    assert await store.claim_fanout("node-c", now, now, 30, 100) == []  # leases still held
    later = now + timedelta(seconds=31)
    assert len(await store.claim_fanout("node-c", later, later, 30, 100)) == 20  # expired: taken over
    await store.finish_fanout([m.id for m in a])
    much_later = later + timedelta(seconds=31)
    assert len(await store.claim_fanout("node-d", much_later, much_later, 30, 100)) == len(ids_b)


async def test_leased_and_recent_messages_are_not_claimed(database: Database) -> None:
    store = SqlStore(database).messages
    await store.insert_inbound(inbound("leased"), lease_owner="live", lease_seconds=30)
    await store.insert_inbound(inbound("fresh", at=T0 + timedelta(seconds=9)), lease_owner=None, lease_seconds=0)
    now = T0 + timedelta(seconds=10)
    claimed = await store.claim_fanout("scanner", now, now - timedelta(seconds=2), 30, 100)
    assert claimed == []


async def test_retention_deletes_in_batches_and_spares_the_send_queue(database: Database) -> None:
    store = SqlStore(database)
    rows = []
    for i in range(25):
        at = T0 - timedelta(days=100, seconds=i)
        rows.append(
            {
                "id": new_message_id(),
                "tenant_id": "tenant_a",
                "direction": "outbound",
                "status": "queued" if i == 0 else "sent",
                "from_number": "+15559876543",
                "to_number": "+15551234567",
                "body": "old",
                "created_at": at,
                "updated_at": at,
            }
        )
    async with database.write() as c:
        await c.execute(insert(messages), rows)
    await store.messages.insert_inbound(inbound("recent"), lease_owner=None, lease_seconds=0)
    cutoff = T0 - timedelta(days=90)
    assert await store.messages.delete_older_than(cutoff, 10) == 10
    assert await store.messages.delete_older_than(cutoff, 10) == 10
    assert await store.messages.delete_older_than(cutoff, 10) == 4
    assert await store.messages.delete_older_than(cutoff, 10) == 0
    assert await count(database) == 2  # the queued one and the recent one


async def test_retention_worker_and_delivery_log(database: Database) -> None:
    from gravity_sms.delivery.retention import RetentionWorker
    from gravity_sms.domain.clock import ManualClock

    store = SqlStore(database)
    for i in range(7):
        await store.deliveries.record(
            Delivery(
                id=f"dlv_{i}",
                tenant_id="tenant_a",
                app_id="app_1" if i % 2 else None,
                trigger_id=None if i % 2 else f"trg_{i}",
                message_id="msg_1",
                url="http://x",
                status_code=200,
                success=True,
                error=None,
                duration_ms=1,
                created_at=T0 - timedelta(days=40 if i < 5 else 1),
            )
        )
    assert await store.deliveries.delivered_keys("msg_1") == {("app_1", None)} | {
        (None, f"trg_{i}") for i in (0, 2, 4, 6)
    }
    await store.messages.insert_inbound(inbound("old", at=T0 - timedelta(days=91)), lease_owner=None, lease_seconds=0)
    worker = RetentionWorker(
        messages=store.messages,
        deliveries=store.deliveries,
        clock=ManualClock(T0),
        message_days=90,
        delivery_days=30,
        batch=2,
    )
    await worker.run_until_idle()
    assert await count(database, delivery_log) == 2
    assert await count(database) == 0


async def test_search_orders_newest_first_with_ties_by_id(database: Database) -> None:
    store = SqlStore(database).messages
    stored = [await store.insert_inbound(inbound(f"rc-{i}"), lease_owner=None, lease_seconds=0) for i in range(5)]
    items, total = await store.search(MessageQuery(tenant_id="tenant_a", limit=2, page=2))
    expected = sorted((m.id for m in stored if m), reverse=True)
    assert total == 5
    assert [m.id for m in items] == expected[2:4]
    items, total = await store.search(MessageQuery(tenant_id="tenant_b"))
    assert (items, total) == ([], 0)


class CountingStore(SqlMessageStore):
    """The real store, whose full counts (the slow ones) are counted and held until released."""

    def __init__(self, db: Database, clock: ManualClock) -> None:
        super().__init__(db, clock=clock)
        self.full_counts = 0
        self.release = asyncio.Event()

    async def _count_all(self, query: MessageQuery) -> int:
        self.full_counts += 1
        await self.release.wait()
        return await super()._count_all(query)

    async def total(self, **query: Any) -> int:
        # The guard only turns a request that waits for a held count into a failure, not a hang.
        _, total = await asyncio.wait_for(self.search(MessageQuery(tenant_id="tenant_a", **query)), 30)
        return total


async def bulk_inbound(db: Database, n: int, start: int = 0) -> None:
    rows = [
        {
            "id": new_message_id(),
            "tenant_id": "tenant_a",
            "direction": "inbound",
            "status": "received",
            "from_number": "+15551234567",
            "to_number": "+15559876543",
            "body": "hi",
            "created_at": T0 + timedelta(seconds=start + i),
            "updated_at": T0 + timedelta(seconds=start + i),
        }
        for i in range(n)
    ]
    async with db.write() as c:
        await c.execute(insert(messages), rows)


async def test_a_large_total_is_counted_in_the_background_never_in_the_request(database: Database) -> None:
    clock = ManualClock()
    store = CountingStore(database, clock)
    n = EXACT_COUNT_LIMIT + 5
    await bulk_inbound(database, n)

    # Never counted on this node: "more than the limit" at once, one full count starts.
    assert await store.total(direction="inbound") == EXACT_COUNT_LIMIT + 1
    assert await store.total(direction="inbound", page=2) == EXACT_COUNT_LIMIT + 1
    assert store.full_counts == 1  # single flight: the second request did not start another
    store.release.set()
    await store.counts.settle()
    assert await store.total(direction="inbound") == n  # exact once the count landed

    # New rows: the fresh count is served without counting again ...
    await bulk_inbound(database, 3, start=n)
    assert await store.total(direction="inbound") == n
    assert store.full_counts == 1
    # ... and once it is due, served stale while one recount runs in the background.
    clock.advance(COUNT_REFRESH_SECONDS)
    store.release.clear()
    assert await store.total(direction="inbound") == n
    assert await store.total(direction="inbound", page=500) == n
    assert store.full_counts == 2
    store.release.set()
    await store.counts.settle()
    assert await store.total(direction="inbound") == n + 3
    # The last page knows the total from its own rows.
    assert await store.total(direction="inbound", page=(n + 3) // 20 + 1) == n + 3


async def test_a_total_that_shrinks_under_the_limit_is_exact_again(database: Database) -> None:
    clock = ManualClock()
    store = CountingStore(database, clock)
    store.release.set()
    await bulk_inbound(database, EXACT_COUNT_LIMIT + 1)
    await store.total()
    await store.counts.settle()
    assert await store.total() == EXACT_COUNT_LIMIT + 1
    async with database.write() as c:
        await c.execute(delete(messages).where(messages.c.created_at >= T0 + timedelta(seconds=30)))
    clock.advance(COUNT_REFRESH_SECONDS)
    assert await store.total() == EXACT_COUNT_LIMIT + 1  # stale for one more request
    await store.counts.settle()
    full_counts = store.full_counts
    assert await store.total() == 30  # counted exactly in the request, a bounded count
    assert await store.total(direction="outbound") == 0
    assert store.full_counts == full_counts


async def test_closing_the_store_cancels_a_count_in_flight(database: Database) -> None:
    counting = CountingStore(database, ManualClock())
    await bulk_inbound(database, EXACT_COUNT_LIMIT + 5)
    assert await counting.total(direction="inbound") == EXACT_COUNT_LIMIT + 1
    assert counting.full_counts == 1  # held: it would never end by itself
    await asyncio.wait_for(counting.counts.close(), 5)
    assert not counting.counts._pending
