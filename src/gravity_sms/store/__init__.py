"""Persistence: SQLAlchemy Core tables and `SqlStore`, one implementation for SQLite and PostgreSQL."""

from gravity_sms.store.database import Database, to_async_url
from gravity_sms.store.sql_store import SqlStore

__all__ = ["Database", "SqlStore", "to_async_url"]
