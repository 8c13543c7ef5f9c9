"""The SQLite batch writer: a group commit across callers, isolated failures, checkpoints off the commit path."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from gravity_sms.store.database import Database


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'w.db'}")
    await database.run_batch(lambda c: c.execute("CREATE TABLE t (k TEXT PRIMARY KEY, v TEXT NOT NULL)"))
    try:
        yield database
    finally:
        await database.dispose()


def rows(path: str) -> list[tuple[str, str]]:
    with sqlite3.connect(path) as conn:
        return sorted(conn.execute("SELECT k, v FROM t").fetchall())


async def test_concurrent_callers_share_transactions_and_get_their_own_results(db: Database, tmp_path: Path) -> None:
    writer = db._batch_writer
    assert writer is not None
    transactions: list[int] = []
    real_run = writer.run

    async def counting_run(fns: list[Any]) -> list[Any]:
        transactions.append(len(fns))
        return await real_run(fns)

    writer.run = counting_run  # type: ignore[method-assign]

    def insert(i: int) -> Callable[[sqlite3.Connection], int]:
        def fn(conn: sqlite3.Connection) -> int:
            conn.execute("INSERT INTO t VALUES (?, ?)", (f"k{i}", "v"))
            return i

        return fn

    results = await asyncio.gather(*(db.run_batch(insert(i)) for i in range(200)))
    assert results == list(range(200))
    assert len(rows(str(tmp_path / "w.db"))) == 200
    # Callers arriving while a transaction runs share the next one.
    assert sum(transactions) == 200 and max(transactions) > 1 and len(transactions) < 20


async def test_a_failing_function_fails_only_its_caller(db: Database, tmp_path: Path) -> None:
    def good(k: str) -> object:
        return lambda conn: conn.execute("INSERT INTO t VALUES (?, 'ok')", (k,)).rowcount

    def bad(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO t VALUES ('partial', 'x')")  # undone with its savepoint
        conn.execute("INSERT INTO t VALUES (NULL, NULL)")  # NOT NULL: raises

    outcomes = await asyncio.gather(
        db.run_batch(good("a")), db.run_batch(bad), db.run_batch(good("b")), return_exceptions=True
    )
    assert outcomes[0] == 1 and outcomes[2] == 1
    assert isinstance(outcomes[1], sqlite3.IntegrityError)
    assert rows(str(tmp_path / "w.db")) == [("a", "ok"), ("b", "ok")]


async def fill(database: Database) -> None:
    await database.run_batch(lambda c: c.execute("CREATE TABLE t (k TEXT PRIMARY KEY, v TEXT NOT NULL)"))
    payload = "x" * 2000
    for batch in range(20):
        await database.run_batch(
            lambda c, b=batch: c.executemany("INSERT INTO t VALUES (?, ?)", [(f"{b}-{i}", payload) for i in range(100)])
        )


@pytest.mark.parametrize("background", [True, False])
async def test_the_wal_is_checkpointed_in_the_background_only(tmp_path: Path, background: bool) -> None:
    path = tmp_path / "ck.db"
    database = Database(f"sqlite:///{path}")
    assert database._batch_writer is not None
    database._batch_writer.checkpoint_seconds = 0.05 if background else 3600
    try:
        await fill(database)  # ~4 MB of rows: past SQLite's default autocheckpoint of 1000 pages
        # Rows reach the main file only through a checkpoint; commits never run one.
        deadline = asyncio.get_running_loop().time() + (10 if background else 1)
        while path.stat().st_size < 3_000_000 and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)
        assert (path.stat().st_size >= 3_000_000) is background
        with sqlite3.connect(path) as conn:
            assert conn.execute("SELECT count(*) FROM t").fetchone() == (2000,)
    finally:
        await database.dispose()
    assert database._batch_writer._checkpointer is None  # stopped with the database
