"""Message rows: inbound storage and dedup, the outbound queue with leases, listings."""

from __future__ import annotations

from gravity_sms.store.database import Database


class SqlMessageStore:
    def __init__(self, db: Database) -> None:
        self.db = db
