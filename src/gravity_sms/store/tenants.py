"""Tenant rows."""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert, select, update

from gravity_sms.domain.models import Tenant
from gravity_sms.store.database import Database
from gravity_sms.store.tables import tenants


def _tenant(row: Any) -> Tenant:
    return Tenant(id=row.id, name=row.name, status=row.status, created_at=row.created_at, updated_at=row.updated_at)


class SqlTenantStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def insert(self, tenant: Tenant) -> None:
        async with self.db.write() as conn:
            await conn.execute(
                insert(tenants).values(
                    id=tenant.id,
                    name=tenant.name,
                    status=tenant.status,
                    created_at=tenant.created_at,
                    updated_at=tenant.updated_at,
                )
            )

    async def get(self, tenant_id: str) -> Tenant | None:
        async with self.db.read() as conn:
            row = (await conn.execute(select(tenants).where(tenants.c.id == tenant_id))).first()
        return _tenant(row) if row else None

    async def find(self) -> list[Tenant]:
        async with self.db.read() as conn:
            rows = (await conn.execute(select(tenants).order_by(tenants.c.created_at, tenants.c.id))).all()
        return [_tenant(r) for r in rows]

    async def update(self, tenant: Tenant) -> None:
        async with self.db.write() as conn:
            await conn.execute(
                update(tenants)
                .where(tenants.c.id == tenant.id)
                .values(name=tenant.name, status=tenant.status, updated_at=tenant.updated_at)
            )
