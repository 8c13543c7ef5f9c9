"""The webhook delivery log: one row per attempt (api.md §4 `webhook-deliveries`), kept 30 days.

Also the fan-out's memory of what was already attempted, so a recovered message is delivered
only to the targets that never got an attempt.

Concurrent `record()` calls share one write transaction (`GroupCommit`; on SQLite one
`run_batch`, one thread hop): each caller returns only after the COMMIT that holds its row, so
the fan-out's `finish_fanout`, which follows its `record()`s, never runs ahead of them. A batch
the database refuses is retried row by row, so one bad row fails only its own caller.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, select
from sqlalchemy.dialects import sqlite

from gravity_sms.domain.fanout import Delivery
from gravity_sms.store.database import Database
from gravity_sms.store.group_commit import GroupCommit
from gravity_sms.store.rows import RowWriter
from gravity_sms.store.tables import delivery_log

COLUMNS = (
    "id",
    "tenant_id",
    "app_id",
    "trigger_id",
    "message_id",
    "url",
    "status_code",
    "success",
    "error",
    "duration_ms",
    "created_at",
)


def _values(delivery: Delivery) -> dict[str, Any]:
    return {name: getattr(delivery, name) for name in COLUMNS}


def _delivery(row: Any) -> Delivery:
    return Delivery(
        id=row.id,
        tenant_id=row.tenant_id,
        app_id=row.app_id,
        trigger_id=row.trigger_id,
        message_id=row.message_id,
        url=row.url,
        status_code=row.status_code,
        success=row.success,
        error=row.error,
        duration_ms=row.duration_ms,
        created_at=row.created_at,
    )


class SqlDeliveryStore:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._records: GroupCommit[Delivery, None] = GroupCommit(
            self._flush, max_batch=512, parallel=1 if db.is_sqlite else 2, name="delivery-log"
        )
        self._rows = RowWriter(db, sqlite.insert(delivery_log), COLUMNS) if db.batches else None

    async def record(self, delivery: Delivery) -> None:
        """Returns once the row is committed (shared with concurrent callers)."""
        await self._records.submit(delivery)

    async def _flush(self, batch: Sequence[Delivery]) -> list[BaseException | None]:
        try:
            await self._insert(batch)
        except Exception:
            if len(batch) == 1:
                raise
            return [await self._insert_alone(d) for d in batch]
        return [None] * len(batch)

    async def _insert(self, batch: Sequence[Delivery]) -> None:
        rows = self._rows
        if rows is not None:
            values = [rows.values(_values(d)) for d in batch]
            await self.db.run_batch(lambda conn: rows.insert_many(conn, values))
        else:
            async with self.db.write(epoch=False) as conn:
                await conn.execute(insert(delivery_log), [_values(d) for d in batch])

    async def _insert_alone(self, delivery: Delivery) -> BaseException | None:
        try:
            await self._insert([delivery])
        except Exception as exc:
            return exc
        return None

    async def delivered_keys(self, message_id: str) -> set[tuple[str | None, str | None]]:
        c = delivery_log.c
        async with self.db.read() as conn:
            rows = (await conn.execute(select(c.app_id, c.trigger_id).where(c.message_id == message_id))).all()
        return {(None, r.trigger_id) if r.trigger_id else (r.app_id, None) for r in rows}

    async def for_message(self, message_id: str) -> list[Delivery]:
        c = delivery_log.c
        query = select(delivery_log).where(c.message_id == message_id).order_by(c.created_at, c.id)
        async with self.db.read() as conn:
            return [_delivery(r) for r in (await conn.execute(query)).all()]

    async def for_app(self, app_id: str, page: int, limit: int) -> tuple[list[Delivery], int]:
        c = delivery_log.c
        query = (
            select(delivery_log)
            .where(c.app_id == app_id)
            .order_by(c.created_at.desc(), c.id.desc())
            .limit(limit)
            .offset((page - 1) * limit)
        )
        async with self.db.read() as conn:
            rows = (await conn.execute(query)).all()
            total = (await conn.execute(select(func.count()).where(c.app_id == app_id))).scalar_one()
        return [_delivery(r) for r in rows], int(total)

    async def delete_older_than(self, cutoff: datetime, batch: int) -> int:
        c = delivery_log.c
        victims = select(c.id).where(c.created_at < cutoff).order_by(c.created_at).limit(batch).scalar_subquery()
        async with self.db.write() as conn:
            result = await conn.execute(delete(delivery_log).where(c.id.in_(victims)))
        return int(result.rowcount or 0)
