"""RingCentral extensions (encrypted tokens), phone numbers, subscriptions, connect tokens, OAuth states."""

from __future__ import annotations

from gravity_sms.store.database import Database


class SqlConnectionStore:
    def __init__(self, db: Database) -> None:
        self.db = db
