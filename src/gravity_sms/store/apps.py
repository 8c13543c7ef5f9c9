"""App rows: API-key hashes, encrypted webhook secrets, and the auth lookup."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select, update

from gravity_sms.domain.apps import StoredSecrets
from gravity_sms.domain.models import App, AuthContext
from gravity_sms.store.database import Database
from gravity_sms.store.tables import apps, tenants

_PUBLIC = (
    apps.c.id,
    apps.c.tenant_id,
    apps.c.name,
    apps.c.role,
    apps.c.webhook_url,
    apps.c.api_key_prefix,
    apps.c.last_used_at,
    apps.c.created_at,
    apps.c.updated_at,
)


def _app(row: Any) -> App:
    return App(
        id=row.id,
        tenant_id=row.tenant_id,
        name=row.name,
        role=row.role,
        webhook_url=row.webhook_url,
        api_key_prefix=row.api_key_prefix,
        last_used_at=row.last_used_at,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


class SqlAppStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def insert(self, app: App, key_hash: str, secret_enc: str) -> None:
        async with self.db.write() as conn:
            await conn.execute(
                insert(apps).values(
                    id=app.id,
                    tenant_id=app.tenant_id,
                    name=app.name,
                    role=app.role,
                    webhook_url=app.webhook_url,
                    api_key_hash=key_hash,
                    api_key_prefix=app.api_key_prefix,
                    webhook_secret_enc=secret_enc,
                    created_at=app.created_at,
                    updated_at=app.updated_at,
                )
            )

    async def get(self, app_id: str) -> App | None:
        async with self.db.read() as conn:
            row = (await conn.execute(select(*_PUBLIC).where(apps.c.id == app_id))).first()
        return _app(row) if row else None

    async def find(self, tenant_id: str | None) -> list[App]:
        query = select(*_PUBLIC).order_by(apps.c.created_at, apps.c.id)
        if tenant_id is not None:
            query = query.where(apps.c.tenant_id == tenant_id)
        async with self.db.read() as conn:
            rows = (await conn.execute(query)).all()
        return [_app(r) for r in rows]

    async def list_webhook_targets(self, tenant_id: str) -> list[App]:
        query = (
            select(*_PUBLIC)
            .where(apps.c.tenant_id == tenant_id, apps.c.webhook_url.is_not(None))
            .order_by(apps.c.created_at, apps.c.id)
        )
        async with self.db.read() as conn:
            rows = (await conn.execute(query)).all()
        return [_app(r) for r in rows]

    async def update(self, app: App) -> None:
        async with self.db.write() as conn:
            await conn.execute(
                update(apps)
                .where(apps.c.id == app.id)
                .values(name=app.name, webhook_url=app.webhook_url, updated_at=app.updated_at)
            )

    async def delete(self, app_id: str) -> str | None:
        async with self.db.write() as conn:
            old = (await conn.execute(select(apps.c.api_key_hash).where(apps.c.id == app_id))).scalar()
            await conn.execute(delete(apps).where(apps.c.id == app_id))
        return old

    async def replace_key(self, app_id: str, key_hash: str, prefix: str, at: datetime) -> str | None:
        async with self.db.write() as conn:
            old = (await conn.execute(select(apps.c.api_key_hash).where(apps.c.id == app_id))).scalar()
            await conn.execute(
                update(apps)
                .where(apps.c.id == app_id)
                .values(api_key_hash=key_hash, api_key_prefix=prefix, updated_at=at)
            )
        return old

    async def get_secrets(self, app_id: str) -> StoredSecrets | None:
        query = select(apps.c.webhook_secret_enc, apps.c.previous_secret_enc, apps.c.previous_secret_expires_at)
        async with self.db.read() as conn:
            row = (await conn.execute(query.where(apps.c.id == app_id))).first()
        if row is None:
            return None
        return StoredSecrets(row.webhook_secret_enc, row.previous_secret_enc, row.previous_secret_expires_at)

    async def set_secrets(self, app_id: str, secrets: StoredSecrets, at: datetime) -> None:
        async with self.db.write() as conn:
            await conn.execute(
                update(apps)
                .where(apps.c.id == app_id)
                .values(
                    webhook_secret_enc=secrets.webhook_secret_enc,
                    previous_secret_enc=secrets.previous_secret_enc,
                    previous_secret_expires_at=secrets.previous_secret_expires_at,
                    updated_at=at,
                )
            )

    async def auth_lookup(self, key_hash: str) -> AuthContext | None:
        query = (
            select(apps.c.id, apps.c.tenant_id, apps.c.role, tenants.c.status)
            .join(tenants, tenants.c.id == apps.c.tenant_id)
            .where(apps.c.api_key_hash == key_hash)
        )
        async with self.db.read() as conn:
            row = (await conn.execute(query)).first()
        if row is None:
            return None
        return AuthContext(
            app_id=row.id, tenant_id=row.tenant_id, role=row.role, key_hash=key_hash, tenant_status=row.status
        )

    async def touch_last_used(self, app_id: str, at: datetime) -> None:
        async with self.db.write() as conn:
            await conn.execute(update(apps).where(apps.c.id == app_id).values(last_used_at=at))
