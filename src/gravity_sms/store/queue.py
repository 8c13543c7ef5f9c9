"""The durable outbound queue: rows of the `messages` table with `direction = 'outbound'`.

Owns enqueueing (a group-commit writer: concurrent sends share one transaction, each caller
awaits its batch's commit before the API answers 202), idempotency keys (inserted in the same
transaction as the message), leased claims (PostgreSQL: `FOR UPDATE SKIP LOCKED`; SQLite: the
single writer of `Database.write()` serialises claims), guarded status moves (`UPDATE … WHERE
status IN (…)`, so a status never moves backwards), retry and tracking schedules, and the
queue metrics. It never talks to RingCentral.

A row is claimable when `status IN ('queued', 'sending') AND next_attempt_at <= now`. A claim
sets the lease and pushes `next_attempt_at` to the lease's expiry, so a row whose worker died
becomes claimable again by itself when the lease runs out (expired-lease recovery).

`lease_expires_at` marks a send attempt under way: set when an attempt starts, cleared when its
outcome is recorded (sent, failed, or a failure given back for a retry). A row taken over with the
mark still set had its attempt cut short (the node died): starting again re-does that attempt and
does not count a new one, so a crash never uses up one of the message's attempts.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, case, func, insert, not_, or_, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from gravity_sms.domain.errors import Conflict
from gravity_sms.domain.ids import new_message_id
from gravity_sms.domain.outbound import (
    IDEMPOTENCY_CONFLICT,
    IDEMPOTENCY_TTL_SECONDS,
    Enqueued,
    NewOutbound,
    QueuedMessage,
    TrackedMessage,
    sources_of,
)
from gravity_sms.store.database import Database
from gravity_sms.store.group_commit import GroupCommit
from gravity_sms.store.rows import RowWriter
from gravity_sms.store.tables import idempotency_keys, messages

m = messages
# Literal predicates (not bound parameters) so PostgreSQL can match the partial indexes.
IN_QUEUE = text("messages.status IN ('queued', 'sending')")
MAX_BATCH = 256
TRACK_LIMIT = timedelta(hours=24)


def _queued(row: Any) -> QueuedMessage:
    return QueuedMessage(
        id=row.id,
        tenant_id=row.tenant_id,
        app_id=row.app_id,
        status=row.status,
        from_number=row.from_number,
        to_number=row.to_number,
        body=row.body,
        attempts=row.attempts,
        parts_sent=row.parts_sent,
        rc_message_id=row.rc_message_id,
        extension_id=row.extension_id,
        claimed_at=row.claimed_at,
        created_at=row.created_at,
    )


OUTBOUND_COLUMNS = (
    "id",
    "tenant_id",
    "app_id",
    "user_id",
    "direction",
    "status",
    "from_number",
    "to_number",
    "body",
    "created_at",
    "updated_at",
    "attempts",
    "next_attempt_at",
    "parts_sent",
    "fanout_pending",
)


def _row_values(item: NewOutbound) -> dict[str, Any]:
    return {
        "id": item.id,
        "tenant_id": item.tenant_id,
        "app_id": item.app_id,
        "user_id": item.user_id,
        "direction": "outbound",
        "status": "queued",
        "from_number": item.from_number,
        "to_number": item.to_number,
        "body": item.body,
        "created_at": item.created_at,
        "updated_at": item.created_at,
        "attempts": 0,
        "next_attempt_at": item.created_at,
        "parts_sent": 0,
        "fanout_pending": False,
    }


class SqlOutboundQueue:
    def __init__(self, db: Database) -> None:
        self.db = db
        # SQLite has one writer anyway; PostgreSQL commits a few batches in parallel.
        self._commits: GroupCommit[NewOutbound, Enqueued] = GroupCommit(
            self._flush, max_batch=MAX_BATCH, parallel=1 if db.is_sqlite else 4, name="outbound-group-commit"
        )
        self._rows = RowWriter(db, insert(m), OUTBOUND_COLUMNS) if db.batches else None

    # --- enqueue: group commit ---------------------------------------------------------------
    async def enqueue(self, item: NewOutbound) -> Enqueued:
        return await self._commits.submit(item)

    async def _flush(self, batch: Sequence[NewOutbound]) -> list[Enqueued | BaseException]:
        plain = [item for item in batch if item.idempotency_key is None]
        if self._rows is not None and len(plain) == len(batch):
            # SQLite, no idempotency keys: one executemany in one transaction, one thread hop.
            rows = self._rows
            values = [rows.values(_row_values(item)) for item in batch]
            try:
                await self.db.run_batch(lambda conn: rows.insert_many(conn, values))
            except Exception:
                return [await self._write_one(item) for item in batch]
            return [Enqueued(item.id, replayed=False) for item in batch]
        try:
            async with self.db.write(epoch=False) as conn:
                results: list[Enqueued | BaseException] = list(await self._write(conn, batch))
        except Exception:
            # One bad item (or a rare id collision) must not fail its neighbours: one by one.
            return [await self._write_one(item) for item in batch]
        return results

    async def _write_one(self, item: NewOutbound) -> Enqueued | BaseException:
        for _ in range(3):
            try:
                async with self.db.write(epoch=False) as conn:
                    return (await self._write(conn, [item]))[0]
            except IntegrityError:
                item = dataclasses.replace(item, id=new_message_id())  # id collision: a fresh one
                continue
            except Exception as exc:
                return exc
        return RuntimeError("could not store the message")

    async def _write(self, conn: AsyncConnection, items: Sequence[NewOutbound]) -> list[Enqueued | Conflict]:
        results: list[Enqueued | Conflict] = []
        rows: list[dict[str, Any]] = []
        for item in items:
            if item.idempotency_key is None:
                results.append(Enqueued(item.id, replayed=False))
                rows.append(_row_values(item))
                continue
            outcome = await self._claim_key(conn, item)
            results.append(outcome)
            if isinstance(outcome, Enqueued) and not outcome.replayed:
                rows.append(_row_values(item))
        if rows:
            await conn.execute(insert(m), rows)
        return results

    async def _claim_key(self, conn: AsyncConnection, item: NewOutbound) -> Enqueued | Conflict:
        assert item.idempotency_key is not None and item.fingerprint is not None
        dialect_insert = postgresql.insert if not self.db.is_sqlite else sqlite.insert
        stmt = (
            dialect_insert(idempotency_keys)
            .values(
                tenant_id=item.tenant_id,
                key=item.idempotency_key,
                request_hash=item.fingerprint,
                message_id=item.id,
                created_at=item.created_at,
            )
            .on_conflict_do_nothing()
            .returning(idempotency_keys.c.key)
        )
        if (await conn.execute(stmt)).first() is not None:
            return Enqueued(item.id, replayed=False)
        # The key exists (PostgreSQL waited for a concurrent holder to commit before answering).
        where = and_(idempotency_keys.c.tenant_id == item.tenant_id, idempotency_keys.c.key == item.idempotency_key)
        row = (await conn.execute(select(idempotency_keys).where(where))).one()
        if row.created_at <= item.created_at - timedelta(seconds=IDEMPOTENCY_TTL_SECONDS):
            # Expired: the key starts a new life with this request.
            await conn.execute(
                update(idempotency_keys)
                .where(where)
                .values(request_hash=item.fingerprint, message_id=item.id, created_at=item.created_at)
            )
            return Enqueued(item.id, replayed=False)
        if row.request_hash == item.fingerprint:
            return Enqueued(row.message_id, replayed=True)
        return Conflict(IDEMPOTENCY_CONFLICT)

    async def close(self) -> None:
        """Wait for commits in flight (callers are awaiting them)."""
        await self._commits.close()

    async def purge_idempotency_keys(self, before: datetime) -> int:
        async with self.db.write(epoch=False) as conn:
            result = await conn.execute(idempotency_keys.delete().where(idempotency_keys.c.created_at < before))
        return int(result.rowcount or 0)

    # --- claims ---------------------------------------------------------------------------------
    async def claim(
        self,
        owner: str,
        now: datetime,
        lease_seconds: float,
        limit: int,
        per_tenant: int,
        per_number: int,
        skip: Sequence[tuple[str, str]] = (),
    ) -> list[QueuedMessage]:
        """Lease up to `limit` due rows, fairly: at most `per_tenant` per tenant and `per_number`
        per sending number, each tenant's oldest first, tenants interleaved (round robin).
        `skip` lists (tenant, from number) pairs the caller knows are held back (rate limits):
        their rows stay untouched instead of being claimed only to be put back."""
        conditions: list[Any] = [IN_QUEUE, m.c.next_attempt_at <= now]
        if skip:
            conditions.append(not_(or_(*(and_(m.c.tenant_id == t, m.c.from_number == f) for t, f in skip))))
        due = (
            select(
                m.c.id,
                m.c.next_attempt_at,
                func.row_number()
                .over(partition_by=m.c.tenant_id, order_by=(m.c.next_attempt_at, m.c.id))
                .label("rank_tenant"),
                func.row_number()
                .over(partition_by=(m.c.tenant_id, m.c.from_number), order_by=(m.c.next_attempt_at, m.c.id))
                .label("rank_number"),
            )
            .where(*conditions)
            .subquery("due")
        )
        picked = (
            select(due.c.id)
            .where(due.c.rank_tenant <= per_tenant, due.c.rank_number <= per_number)
            .order_by(due.c.rank_tenant, due.c.next_attempt_at, due.c.id)
            .limit(limit)
        )
        # Re-checked under the row lock: a row another worker claimed meanwhile is skipped.
        locked = (
            select(m.c.id)
            .where(m.c.id.in_(picked), IN_QUEUE, m.c.next_attempt_at <= now)
            .with_for_update(skip_locked=True)
        )
        until = now + timedelta(seconds=lease_seconds)
        stmt = update(m).where(m.c.id.in_(locked)).values(lease_owner=owner, next_attempt_at=until).returning(*m.c)
        async with self.db.write(epoch=False) as conn:
            rows = (await conn.execute(stmt)).all()
        claimed = [_queued(r) for r in rows]
        claimed.sort(key=lambda q: q.created_at)
        return claimed

    def _owned(self, message_id: str, owner: str) -> Any:
        return and_(m.c.id == message_id, m.c.lease_owner == owner)

    async def _update(self, where: Any, values: dict[str, Any]) -> bool:
        async with self.db.write(epoch=False) as conn:
            result = await conn.execute(update(m).where(where).values(**values))
        return bool(result.rowcount == 1)

    async def start_attempt(
        self, message_id: str, owner: str, now: datetime, lease_until: datetime, extension_id: str
    ) -> bool:
        return await self.begin_attempt(message_id, owner, now, lease_until, extension_id) is not None

    async def begin_attempt(
        self, message_id: str, owner: str, now: datetime, lease_until: datetime, extension_id: str
    ) -> int | None:
        """Start a send attempt; answers the message's attempt count including this one (None:
        the lease is lost). An attempt cut short by a crash (still marked under way) is re-done,
        not counted again."""
        stmt = (
            update(m)
            .where(self._owned(message_id, owner), m.c.status.in_(sources_of("sending")))
            .values(
                status="sending",
                attempts=m.c.attempts + case((m.c.lease_expires_at.is_(None), 1), else_=0),
                claimed_at=now,
                lease_expires_at=lease_until,
                next_attempt_at=lease_until,
                extension_id=extension_id,
                updated_at=now,
            )
            .returning(m.c.attempts)
        )
        async with self.db.write(epoch=False) as conn:
            row = (await conn.execute(stmt)).first()
        return None if row is None else int(row.attempts)

    async def part_accepted(
        self, message_id: str, owner: str, parts_sent: int, rc_message_id: str | None, now: datetime
    ) -> bool:
        values: dict[str, Any] = {"parts_sent": parts_sent, "updated_at": now}
        if rc_message_id is not None:
            values["rc_message_id"] = rc_message_id
        return await self._update(and_(self._owned(message_id, owner), m.c.status == "sending"), values)

    async def mark_sent(
        self, message_id: str, owner: str, rc_message_id: str | None, now: datetime, track_next_at: datetime
    ) -> bool:
        values: dict[str, Any] = {
            "status": "sent",
            "error": None,
            "lease_owner": None,
            "lease_expires_at": None,
            "next_attempt_at": None,
            "claimed_at": None,
            "track_next_at": track_next_at,
            "track_until": now + TRACK_LIMIT,
            "updated_at": now,
        }
        if rc_message_id is not None:
            values["rc_message_id"] = rc_message_id
        return await self._update(and_(self._owned(message_id, owner), m.c.status.in_(sources_of("sent"))), values)

    async def mark_failed(self, message_id: str, error: str, now: datetime, owner: str | None = None) -> bool:
        where = and_(m.c.id == message_id, m.c.status.in_(("queued", "sending")))
        if owner is not None:
            where = and_(where, m.c.lease_owner == owner)
        return await self._update(
            where,
            {
                "status": "failed",
                "error": error,
                "lease_owner": None,
                "lease_expires_at": None,
                "next_attempt_at": None,
                "claimed_at": None,
                "track_next_at": None,
                "updated_at": now,
            },
        )

    async def reschedule(
        self, message_id: str, owner: str, until: datetime, now: datetime, *, in_doubt: bool, settled: bool = True
    ) -> bool:
        """Give the row back to the queue, due at `until`. `in_doubt=False` records that the last
        attempt certainly did not reach RingCentral (no message-store lookup needed next time).
        `settled=False` (a deferral, a failed message-store lookup) records no outcome: an attempt
        cut short by a crash stays marked, and is re-done rather than counted again."""
        values: dict[str, Any] = {"lease_owner": None, "next_attempt_at": until}
        if settled:
            values["lease_expires_at"] = None
        if not in_doubt:
            values["claimed_at"] = None
        return await self._update(and_(self._owned(message_id, owner), IN_QUEUE), values)

    async def release(self, owner: str, now: datetime) -> int:
        """Graceful stop: every lease of `owner` is given back at once (an attempt interrupted
        by the stop stays marked under way, like one cut short by a crash)."""
        async with self.db.write(epoch=False) as conn:
            result = await conn.execute(
                update(m).where(m.c.lease_owner == owner, IN_QUEUE).values(lease_owner=None, next_attempt_at=now)
            )
        return int(result.rowcount or 0)

    async def rc_id_in_use(self, tenant_id: str, to_number: str, rc_message_id: str) -> bool:
        """Whether another outbound message already owns this RingCentral id (an index range scan
        on (tenant_id, to_number, …): only this recipient's messages are looked at)."""
        query = select(m.c.id).where(
            m.c.tenant_id == tenant_id,
            m.c.to_number == to_number,
            m.c.rc_message_id == rc_message_id,
            m.c.direction == "outbound",
        )
        async with self.db.read() as conn:
            return (await conn.execute(query.limit(1))).first() is not None

    # --- delivery tracking ------------------------------------------------------------------------
    async def claim_tracking(self, now: datetime, lease_seconds: float, limit: int) -> list[TrackedMessage]:
        """Due `sent` rows; pushing `track_next_at` forward is the lease (no second poller)."""
        locked = (
            select(m.c.id)
            .where(text("messages.track_next_at IS NOT NULL"), m.c.track_next_at <= now, m.c.status == "sent")
            .order_by(m.c.track_next_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        stmt = (
            update(m)
            .where(m.c.id.in_(locked))
            .values(track_next_at=now + timedelta(seconds=lease_seconds))
            .returning(m.c.id, m.c.tenant_id, m.c.app_id, m.c.extension_id, m.c.rc_message_id, m.c.track_until)
        )
        async with self.db.write(epoch=False) as conn:
            rows = (await conn.execute(stmt)).all()
        return [
            TrackedMessage(
                id=r.id,
                tenant_id=r.tenant_id,
                app_id=r.app_id,
                extension_id=r.extension_id,
                rc_message_id=r.rc_message_id,
                track_until=r.track_until,
            )
            for r in rows
        ]

    async def mark_delivered(self, message_id: str, now: datetime) -> bool:
        return await self._update(
            and_(m.c.id == message_id, m.c.status.in_(sources_of("delivered"))),
            {"status": "delivered", "track_next_at": None, "updated_at": now},
        )

    async def mark_delivery_failed(self, message_id: str, error: str, now: datetime) -> bool:
        return await self._update(
            and_(m.c.id == message_id, m.c.status == "sent"),
            {"status": "failed", "error": error, "track_next_at": None, "updated_at": now},
        )

    async def schedule_tracking(self, message_id: str, next_at: datetime | None) -> None:
        await self._update(and_(m.c.id == message_id, m.c.status == "sent"), {"track_next_at": next_at})

    # --- metrics ----------------------------------------------------------------------------------
    async def stats(self, now: datetime) -> tuple[int, float]:
        query = select(func.count(), func.min(m.c.created_at)).where(IN_QUEUE)
        async with self.db.read() as conn:
            count, oldest = (await conn.execute(query)).one()
        age = 0.0
        if oldest is not None:
            if isinstance(oldest, str):  # SQLite aggregates bypass the column type
                oldest = datetime.fromisoformat(oldest)
            if oldest.tzinfo is None:
                from datetime import UTC

                oldest = oldest.replace(tzinfo=UTC)
            age = max(0.0, (now - oldest).total_seconds())
        return int(count), age
