"""RingCentral extensions (encrypted tokens), phone numbers, subscriptions, connect tokens, OAuth states."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from gravity_sms.store.database import Database
from gravity_sms.store.tables import rc_phone_numbers, rc_subscriptions


@dataclass(frozen=True, slots=True)
class SubscriptionRow:
    id: str
    tenant_id: str
    extension_id: str
    verification_token_hash: str
    status: str
    expires_at: datetime | None


def _subscription(row: Any) -> SubscriptionRow:
    return SubscriptionRow(
        id=row.id,
        tenant_id=row.tenant_id,
        extension_id=row.extension_id,
        verification_token_hash=row.verification_token_hash,
        status=row.status,
        expires_at=row.expires_at,
    )


class SqlConnectionStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def get_subscription(self, subscription_id: str) -> SubscriptionRow | None:
        async with self.db.read() as conn:
            row = (await conn.execute(select(rc_subscriptions).where(rc_subscriptions.c.id == subscription_id))).first()
        return _subscription(row) if row else None

    async def tenant_numbers(self, tenant_id: str) -> set[str]:
        query = select(rc_phone_numbers.c.phone_number).where(rc_phone_numbers.c.tenant_id == tenant_id)
        async with self.db.read() as conn:
            return set((await conn.execute(query)).scalars())
