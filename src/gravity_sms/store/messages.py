"""Message rows: conversion to the domain record, single-message reads, inbound storage and dedup,
listings. (The outbound queue — claims, leases, status moves — lives in `store.queue`.)"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from gravity_sms.domain.models import Message
from gravity_sms.store.database import Database
from gravity_sms.store.tables import messages


def message_from_row(row: Any) -> Message:
    return Message(
        id=row.id,
        tenant_id=row.tenant_id,
        direction=row.direction,
        status=row.status,
        from_number=row.from_number,
        to_number=row.to_number,
        body=row.body,
        created_at=row.created_at,
        updated_at=row.updated_at,
        app_id=row.app_id,
        user_id=row.user_id,
        rc_message_id=row.rc_message_id,
        error=row.error,
        rc_created_at=row.rc_created_at,
    )


class SqlMessageStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def get(self, message_id: str) -> Message | None:
        async with self.db.read() as conn:
            row = (await conn.execute(select(messages).where(messages.c.id == message_id))).first()
        return message_from_row(row) if row else None
