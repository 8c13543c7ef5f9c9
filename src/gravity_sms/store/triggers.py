"""Power Automate trigger subscriptions (api.md §8)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, insert, select

from gravity_sms.domain.fanout import Trigger
from gravity_sms.store.database import Database
from gravity_sms.store.tables import triggers


def _trigger(row: Any) -> Trigger:
    return Trigger(
        id=row.id,
        tenant_id=row.tenant_id,
        app_id=row.app_id,
        callback_url=row.callback_url,
        phone_number=row.phone_number,
        created_at=row.created_at,
    )


class SqlTriggerStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def insert(self, trigger: Trigger) -> None:
        async with self.db.write() as conn:
            await conn.execute(
                insert(triggers).values(
                    id=trigger.id,
                    tenant_id=trigger.tenant_id,
                    app_id=trigger.app_id,
                    callback_url=trigger.callback_url,
                    phone_number=trigger.phone_number,
                    created_at=trigger.created_at,
                )
            )

    async def get(self, trigger_id: str) -> Trigger | None:
        async with self.db.read() as conn:
            row = (await conn.execute(select(triggers).where(triggers.c.id == trigger_id))).first()
        return _trigger(row) if row else None

    async def delete(self, trigger_id: str) -> bool:
        async with self.db.write() as conn:
            result = await conn.execute(delete(triggers).where(triggers.c.id == trigger_id))
        return bool(result.rowcount)

    async def for_tenant(self, tenant_id: str) -> list[Trigger]:
        query = select(triggers).where(triggers.c.tenant_id == tenant_id).order_by(triggers.c.created_at)
        async with self.db.read() as conn:
            return [_trigger(r) for r in (await conn.execute(query)).all()]
