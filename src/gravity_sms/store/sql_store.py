"""`SqlStore`: the one store implementation, composed of one repository per concept."""

from __future__ import annotations

from gravity_sms.store.apps import SqlAppStore
from gravity_sms.store.connections import SqlConnectionStore
from gravity_sms.store.database import Database
from gravity_sms.store.deliveries import SqlDeliveryStore
from gravity_sms.store.messages import SqlMessageStore
from gravity_sms.store.tenants import SqlTenantStore
from gravity_sms.store.triggers import SqlTriggerStore


class SqlStore:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.tenants = SqlTenantStore(db)
        self.apps = SqlAppStore(db)
        self.messages = SqlMessageStore(db)
        self.deliveries = SqlDeliveryStore(db)
        self.triggers = SqlTriggerStore(db)
        self.connections = SqlConnectionStore(db)

    async def ping(self) -> None:
        await self.db.ping()

    async def close(self) -> None:
        await self.messages.counts.close()  # before the connections they run on go
        await self.db.dispose()
