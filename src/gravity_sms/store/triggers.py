"""Power Automate trigger subscriptions."""

from __future__ import annotations

from gravity_sms.store.database import Database


class SqlTriggerStore:
    def __init__(self, db: Database) -> None:
        self.db = db
