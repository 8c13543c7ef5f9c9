"""The database engine: URL translation, SQLite pragmas (WAL), migrations, transactions.

`Database` owns the async engine. SQLite runs in WAL mode with a busy timeout; because SQLite has
one writer, writes are serialised by an asyncio lock (`write()`), which also serialises lease
claims so two workers never take the same message. PostgreSQL uses a pool and row locks
(`FOR UPDATE SKIP LOCKED`).

The hot inserts (group commits of sends and inbound events) take a shorter way on SQLite:
`run_batch()` runs one plain function over a dedicated `sqlite3` connection in its own thread,
the whole batch in one transaction and one thread hop, under the same write lock. (Through the
async driver each statement, the BEGIN and the COMMIT were a hop each, and the hops cost more
than the inserts.)

`epoch` counts committed `write()` transactions: a cache of rows those may change (the inbound
routes) is valid while the epoch it was filled at is current. `run_batch()` does not count: it
only appends messages.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from gravity_sms.store.tables import metadata

R = TypeVar("R")


def to_async_url(url: str) -> str:
    """`sqlite:///x.db` → `sqlite+aiosqlite:///x.db`; `postgresql://…` → `postgresql+asyncpg://…`."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        parsed = parsed.set(drivername="sqlite+aiosqlite")
    elif backend in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
    else:
        raise ValueError(f"unsupported database URL scheme: {parsed.drivername}")
    return parsed.render_as_string(hide_password=False)


class Database:
    def __init__(self, url: str, *, echo: bool = False, pool_size: int = 10, schema: str | None = None) -> None:
        self.url = to_async_url(url)
        self.dialect = make_url(self.url).get_backend_name()
        self.is_sqlite = self.dialect == "sqlite"
        self.epoch = 0
        self._batch_writer: SqliteBatchWriter | None = None
        kwargs: dict[str, Any] = {"echo": echo}
        if self.is_sqlite:
            database = make_url(self.url).database
            if database and database != ":memory:":
                self._batch_writer = SqliteBatchWriter(database)
            if database and database != ":memory:":
                Path(database).parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"timeout": 30}
        else:
            kwargs.update(pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)
            if schema:
                # Tests isolate each case in its own PostgreSQL schema.
                kwargs["connect_args"] = {"server_settings": {"search_path": schema}}
        self.engine: AsyncEngine = create_async_engine(self.url, **kwargs)
        if self.is_sqlite:
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        # SQLite has one writer: serialise writers in-process instead of spinning on SQLITE_BUSY.
        self._write_lock = asyncio.Lock()

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.connect() as conn:
            yield conn

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction: committed on success, rolled back on error."""
        if self.is_sqlite:
            async with self._write_lock, self.engine.begin() as conn:
                yield conn
        else:
            async with self.engine.begin() as conn:
                yield conn
        self.epoch += 1

    @property
    def batches(self) -> bool:
        """True when `run_batch()` is available (SQLite on a file)."""
        return self._batch_writer is not None

    async def run_batch(self, fn: Callable[[sqlite3.Connection], R]) -> R:
        """SQLite only: `fn(connection)` in one transaction, committed before this returns."""
        assert self._batch_writer is not None, "run_batch needs SQLite on a file"
        async with self._write_lock:
            return await self._batch_writer.run(fn)

    async def create_all(self) -> None:
        """Create the schema from the table definitions (tests); production uses `migrate()`."""
        async with self.engine.begin() as conn:
            await conn.run_sync(metadata.create_all)

    async def ping(self) -> None:
        from sqlalchemy import text

        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        if self._batch_writer is not None:
            async with self._write_lock:
                await self._batch_writer.close()
        await self.engine.dispose()


class SqliteBatchWriter:
    """One `sqlite3` connection, used only from one thread of its own."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None

    async def run(self, fn: Callable[[sqlite3.Connection], R]) -> R:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="sqlite-batch")
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._transaction, fn)

    def _transaction(self, fn: Callable[[sqlite3.Connection], R]) -> R:
        if self._conn is None:
            self._conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=True)
            _sqlite_pragmas(self._conn, None)
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = fn(conn)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return result

    async def close(self) -> None:
        executor, self._executor = self._executor, None
        if executor is None:
            return
        await asyncio.get_running_loop().run_in_executor(executor, self._close)
        executor.shutdown(wait=False)

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    # NORMAL in WAL mode is durable across application crashes (only an OS crash or power loss
    # can lose the last commits); FULL also survives power loss. The gateway promises the former.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()
