"""The webhook delivery log."""

from __future__ import annotations

from gravity_sms.store.database import Database


class SqlDeliveryStore:
    def __init__(self, db: Database) -> None:
        self.db = db
