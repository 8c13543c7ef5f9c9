"""The webhook delivery log: one row per attempt (api.md §4 `webhook-deliveries`), kept 30 days.

Also the fan-out's memory of what was already attempted, so a recovered message is delivered
only to the targets that never got an attempt.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, select

from gravity_sms.domain.fanout import Delivery
from gravity_sms.store.database import Database
from gravity_sms.store.tables import delivery_log


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

    async def record(self, delivery: Delivery) -> None:
        async with self.db.write() as conn:
            await conn.execute(
                insert(delivery_log).values(
                    id=delivery.id,
                    tenant_id=delivery.tenant_id,
                    app_id=delivery.app_id,
                    trigger_id=delivery.trigger_id,
                    message_id=delivery.message_id,
                    url=delivery.url,
                    status_code=delivery.status_code,
                    success=delivery.success,
                    error=delivery.error,
                    duration_ms=delivery.duration_ms,
                    created_at=delivery.created_at,
                )
            )

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
