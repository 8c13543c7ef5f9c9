"""Alembic from empty to head produces exactly the table definitions, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from gravity_sms.store.migrate import current_revision, migrate
from gravity_sms.store.tables import metadata
from tests.conftest import drop_schema, make_database


def _diff(sync_conn: Any) -> list[Any]:
    context = MigrationContext.configure(sync_conn, opts={"compare_type": True, "target_metadata": metadata})
    return list(compare_metadata(context, metadata))


async def test_migrations_match_table_definitions(db_backend: str, tmp_path: Path) -> None:
    db, _, schema = await make_database(db_backend, tmp_path)
    try:
        await migrate(db)
        async with db.engine.connect() as conn:
            diff = await conn.run_sync(_diff)
            assert await current_revision(conn) is not None
            tables = set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
        assert diff == []
        assert set(metadata.tables) <= tables
        await migrate(db)  # idempotent: nothing pending, nothing fails
    finally:
        await db.dispose()
        await drop_schema(schema)


async def test_sqlite_runs_in_wal_mode(tmp_path: Path) -> None:
    db, _, _ = await make_database("sqlite", tmp_path)
    try:
        await migrate(db)
        async with db.engine.connect() as conn:
            mode = (await conn.exec_driver_sql("PRAGMA journal_mode")).scalar()
            fks = (await conn.exec_driver_sql("PRAGMA foreign_keys")).scalar()
        assert (mode, fks) == ("wal", 1)
    finally:
        await db.dispose()
