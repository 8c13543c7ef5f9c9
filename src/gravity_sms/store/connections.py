"""RingCentral extensions (encrypted tokens), phone numbers, subscriptions, connect tokens, OAuth states.

Implements `gravity_sms.domain.connections.ConnectionStore`. Tokens arrive here already encrypted
and hashed; this module never sees a plaintext secret.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, func, insert, or_, select, update

from gravity_sms.domain.connection_store import NumberInfo, StoredExtension, StoredSubscription
from gravity_sms.store.database import Database
from gravity_sms.store.tables import (
    connect_tokens,
    oauth_states,
    rc_extensions,
    rc_phone_numbers,
    rc_subscriptions,
)

# Kept for the pipelines that already read subscriptions by this name.
SubscriptionRow = StoredSubscription


def _subscription(row: Any) -> StoredSubscription:
    return StoredSubscription(
        id=row.id,
        tenant_id=row.tenant_id,
        extension_id=row.extension_id,
        verification_token_hash=row.verification_token_hash,
        status=row.status,
        expires_at=row.expires_at,
    )


def _extension(row: Any) -> StoredExtension:
    return StoredExtension(
        tenant_id=row.tenant_id,
        extension_id=row.extension_id,
        account_id=row.account_id or "",
        status=row.status,
        error=row.error,
        access_token_enc=row.access_token_enc,
        refresh_token_enc=row.refresh_token_enc,
        access_expires_at=row.access_expires_at,
        refresh_expires_at=row.refresh_expires_at,
        last_event_at=row.last_event_at,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _number(row: Any) -> NumberInfo:
    return NumberInfo(
        phone_number=row.phone_number,
        extension_id=row.extension_id,
        features=tuple(json.loads(row.features)),
        sms_enabled=bool(row.sms_enabled),
    )


def _ext_key(tenant_id: str, extension_id: str) -> Any:
    return and_(rc_extensions.c.tenant_id == tenant_id, rc_extensions.c.extension_id == extension_id)


class SqlConnectionStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    # --- extensions ------------------------------------------------------------------------------
    async def get_extension(self, tenant_id: str, extension_id: str) -> StoredExtension | None:
        async with self.db.read() as conn:
            row = (await conn.execute(select(rc_extensions).where(_ext_key(tenant_id, extension_id)))).first()
        return _extension(row) if row else None

    async def tenant_extensions(self, tenant_id: str) -> list[StoredExtension]:
        query = (
            select(rc_extensions)
            .where(rc_extensions.c.tenant_id == tenant_id)
            .order_by(rc_extensions.c.created_at, rc_extensions.c.extension_id)
        )
        async with self.db.read() as conn:
            return [_extension(r) for r in (await conn.execute(query)).all()]

    async def all_connected(self) -> list[StoredExtension]:
        query = (
            select(rc_extensions)
            .where(rc_extensions.c.status == "connected")
            .order_by(rc_extensions.c.tenant_id, rc_extensions.c.extension_id)
        )
        async with self.db.read() as conn:
            return [_extension(r) for r in (await conn.execute(query)).all()]

    async def save_connection(self, ext: StoredExtension, numbers: list[NumberInfo]) -> None:
        values = {
            "account_id": ext.account_id,
            "status": ext.status,
            "error": ext.error,
            "access_token_enc": ext.access_token_enc,
            "refresh_token_enc": ext.refresh_token_enc,
            "access_expires_at": ext.access_expires_at,
            "refresh_expires_at": ext.refresh_expires_at,
            "last_event_at": ext.last_event_at,
            "updated_at": ext.updated_at,
        }
        async with self.db.write() as conn:
            found = (
                await conn.execute(
                    update(rc_extensions).where(_ext_key(ext.tenant_id, ext.extension_id)).values(**values)
                )
            ).rowcount
            if not found:
                await conn.execute(
                    insert(rc_extensions).values(
                        tenant_id=ext.tenant_id, extension_id=ext.extension_id, created_at=ext.created_at, **values
                    )
                )
            # A number moves with whoever connected it last within the tenant.
            await conn.execute(
                delete(rc_phone_numbers).where(
                    rc_phone_numbers.c.tenant_id == ext.tenant_id,
                    or_(
                        rc_phone_numbers.c.extension_id == ext.extension_id,
                        rc_phone_numbers.c.phone_number.in_([n.phone_number for n in numbers]),
                    ),
                )
            )
            if numbers:
                await conn.execute(
                    insert(rc_phone_numbers),
                    [
                        {
                            "tenant_id": ext.tenant_id,
                            "phone_number": n.phone_number,
                            "extension_id": ext.extension_id,
                            "features": json.dumps(list(n.features)),
                            "sms_enabled": n.sms_enabled,
                        }
                        for n in {n.phone_number: n for n in numbers}.values()
                    ],
                )

    async def save_tokens(
        self,
        tenant_id: str,
        extension_id: str,
        *,
        access_token_enc: str,
        refresh_token_enc: str,
        access_expires_at: datetime,
        refresh_expires_at: datetime,
        now: datetime,
    ) -> None:
        async with self.db.write() as conn:
            await conn.execute(
                update(rc_extensions)
                .where(_ext_key(tenant_id, extension_id))
                .values(
                    access_token_enc=access_token_enc,
                    refresh_token_enc=refresh_token_enc,
                    access_expires_at=access_expires_at,
                    refresh_expires_at=refresh_expires_at,
                    error=None,
                    updated_at=now,
                )
            )

    async def mark_disconnected(self, tenant_id: str, extension_id: str, error: str, now: datetime) -> None:
        async with self.db.write() as conn:
            await conn.execute(
                update(rc_extensions)
                .where(_ext_key(tenant_id, extension_id))
                .values(
                    status="disconnected",
                    error=error,
                    access_token_enc=None,
                    refresh_token_enc=None,
                    access_expires_at=None,
                    refresh_expires_at=None,
                    updated_at=now,
                )
            )
            # Events for a disconnected extension must store nothing: forget its subscriptions.
            await conn.execute(
                delete(rc_subscriptions).where(
                    rc_subscriptions.c.tenant_id == tenant_id, rc_subscriptions.c.extension_id == extension_id
                )
            )

    async def set_error(self, tenant_id: str, extension_id: str, error: str | None, now: datetime) -> None:
        async with self.db.write() as conn:
            await conn.execute(
                update(rc_extensions).where(_ext_key(tenant_id, extension_id)).values(error=error, updated_at=now)
            )

    async def note_event(self, tenant_id: str, extension_id: str, at: datetime) -> None:
        async with self.db.write() as conn:
            await conn.execute(
                update(rc_extensions)
                .where(
                    _ext_key(tenant_id, extension_id),
                    or_(rc_extensions.c.last_event_at.is_(None), rc_extensions.c.last_event_at < at),
                )
                .values(last_event_at=at)
            )

    # --- numbers ---------------------------------------------------------------------------------
    async def find_number(self, tenant_id: str, phone_number: str) -> NumberInfo | None:
        query = select(rc_phone_numbers).where(
            rc_phone_numbers.c.tenant_id == tenant_id, rc_phone_numbers.c.phone_number == phone_number
        )
        async with self.db.read() as conn:
            row = (await conn.execute(query)).first()
        return _number(row) if row else None

    async def tenant_phone_numbers(self, tenant_id: str) -> list[NumberInfo]:
        query = (
            select(rc_phone_numbers)
            .where(rc_phone_numbers.c.tenant_id == tenant_id)
            .order_by(rc_phone_numbers.c.extension_id, rc_phone_numbers.c.phone_number)
        )
        async with self.db.read() as conn:
            return [_number(r) for r in (await conn.execute(query)).all()]

    async def tenant_numbers(self, tenant_id: str) -> set[str]:
        query = select(rc_phone_numbers.c.phone_number).where(rc_phone_numbers.c.tenant_id == tenant_id)
        async with self.db.read() as conn:
            return set((await conn.execute(query)).scalars())

    # --- subscriptions ---------------------------------------------------------------------------
    async def get_subscription(self, subscription_id: str) -> StoredSubscription | None:
        async with self.db.read() as conn:
            row = (await conn.execute(select(rc_subscriptions).where(rc_subscriptions.c.id == subscription_id))).first()
        return _subscription(row) if row else None

    async def extension_subscriptions(self, tenant_id: str, extension_id: str) -> list[StoredSubscription]:
        query = (
            select(rc_subscriptions)
            .where(rc_subscriptions.c.tenant_id == tenant_id, rc_subscriptions.c.extension_id == extension_id)
            .order_by(rc_subscriptions.c.created_at, rc_subscriptions.c.id)
        )
        async with self.db.read() as conn:
            return [_subscription(r) for r in (await conn.execute(query)).all()]

    async def save_subscription(self, sub: StoredSubscription, now: datetime) -> None:
        async with self.db.write() as conn:
            await conn.execute(delete(rc_subscriptions).where(rc_subscriptions.c.id == sub.id))
            await conn.execute(
                insert(rc_subscriptions).values(
                    id=sub.id,
                    tenant_id=sub.tenant_id,
                    extension_id=sub.extension_id,
                    verification_token_hash=sub.verification_token_hash,
                    status=sub.status,
                    expires_at=sub.expires_at,
                    created_at=now,
                    updated_at=now,
                )
            )

    async def update_subscription(
        self, subscription_id: str, status: str, expires_at: datetime | None, now: datetime
    ) -> None:
        async with self.db.write() as conn:
            await conn.execute(
                update(rc_subscriptions)
                .where(rc_subscriptions.c.id == subscription_id)
                .values(status=status, expires_at=expires_at, updated_at=now)
            )

    async def delete_subscription(self, subscription_id: str) -> None:
        async with self.db.write() as conn:
            await conn.execute(delete(rc_subscriptions).where(rc_subscriptions.c.id == subscription_id))

    async def delete_connection(self, tenant_id: str, extension_id: str) -> None:
        async with self.db.write() as conn:
            await conn.execute(
                delete(rc_subscriptions).where(
                    rc_subscriptions.c.tenant_id == tenant_id, rc_subscriptions.c.extension_id == extension_id
                )
            )
            await conn.execute(
                delete(rc_phone_numbers).where(
                    rc_phone_numbers.c.tenant_id == tenant_id, rc_phone_numbers.c.extension_id == extension_id
                )
            )
            await conn.execute(delete(rc_extensions).where(_ext_key(tenant_id, extension_id)))

    # --- connect tokens and OAuth states -----------------------------------------------------------
    async def insert_connect_token(
        self, token_hash: str, tenant_id: str, kind: str, expires_at: datetime, now: datetime
    ) -> None:
        async with self.db.write() as conn:
            # Housekeeping on the way: expired tokens have no use.
            await conn.execute(delete(connect_tokens).where(connect_tokens.c.expires_at < now))
            await conn.execute(
                insert(connect_tokens).values(
                    token_hash=token_hash, tenant_id=tenant_id, kind=kind, expires_at=expires_at, created_at=now
                )
            )

    async def connect_token_tenant(self, token_hash: str, now: datetime) -> str | None:
        query = select(connect_tokens.c.tenant_id).where(
            connect_tokens.c.token_hash == token_hash,
            connect_tokens.c.used_at.is_(None),
            connect_tokens.c.expires_at > now,
        )
        async with self.db.read() as conn:
            return (await conn.execute(query)).scalar()

    async def consume_connect_token(self, token_hash: str, now: datetime) -> str | None:
        async with self.db.write() as conn:
            # The conditional UPDATE is the single-use guarantee: only one caller sees rowcount 1.
            taken = (
                await conn.execute(
                    update(connect_tokens)
                    .where(
                        connect_tokens.c.token_hash == token_hash,
                        connect_tokens.c.used_at.is_(None),
                        connect_tokens.c.expires_at > now,
                    )
                    .values(used_at=now)
                )
            ).rowcount
            if taken != 1:
                return None
            query = select(connect_tokens.c.tenant_id).where(connect_tokens.c.token_hash == token_hash)
            return (await conn.execute(query)).scalar()

    async def count_connect_tokens(self, tenant_id: str, since: datetime) -> int:
        query = select(func.count()).where(
            connect_tokens.c.tenant_id == tenant_id, connect_tokens.c.created_at >= since
        )
        async with self.db.read() as conn:
            return int((await conn.execute(query)).scalar() or 0)

    async def insert_oauth_state(
        self, state_hash: str, tenant_id: str, code_verifier_enc: str, expires_at: datetime, now: datetime
    ) -> None:
        async with self.db.write() as conn:
            await conn.execute(delete(oauth_states).where(oauth_states.c.expires_at < now))
            await conn.execute(
                insert(oauth_states).values(
                    state_hash=state_hash,
                    tenant_id=tenant_id,
                    code_verifier_enc=code_verifier_enc,
                    expires_at=expires_at,
                    created_at=now,
                )
            )

    async def take_oauth_state(self, state_hash: str, now: datetime) -> tuple[str, str] | None:
        async with self.db.write() as conn:
            row = (await conn.execute(select(oauth_states).where(oauth_states.c.state_hash == state_hash))).first()
            if row is None:
                return None
            gone = (await conn.execute(delete(oauth_states).where(oauth_states.c.state_hash == state_hash))).rowcount
            if gone != 1 or row.expires_at <= now:
                return None
            return row.tenant_id, row.code_verifier_enc
