"""The database engine: URL translation, SQLite pragmas (WAL), migrations, transactions.

`Database` owns the async engine. SQLite runs in WAL mode with a busy timeout; because SQLite has
one writer, writes are serialised by an asyncio lock (`write()`), which also serialises lease
claims so two workers never take the same message. PostgreSQL uses a pool and row locks
(`FOR UPDATE SKIP LOCKED`).

The hot inserts (group commits of sends and inbound events) take a shorter way on SQLite:
`run_batch()` runs one plain function over a dedicated `sqlite3` connection in its own thread,
the whole batch in one transaction and one thread hop, under the same write lock. (Through the
async driver each statement, the BEGIN and the COMMIT were a hop each, and the hops cost more
than the inserts.) Functions submitted while a transaction runs share the next one (a group
commit across stores: inbound rows, delivery-log rows and outbox updates commit together), each
in its own savepoint, so one function's error fails only its own caller.

Checkpoints run off the commit path: the batch connection does not checkpoint after its
commits (`wal_autocheckpoint=0`); a background thread with a connection of its own runs a
PASSIVE checkpoint every `CHECKPOINT_SECONDS`, which never blocks the writer. A checkpoint is
where SQLite waits for the disk (in WAL mode with synchronous=NORMAL, commits never fsync), so
it would otherwise land, now and then, inside the COMMIT an acknowledgement is waiting for.

`epoch` counts committed `write()` transactions: a cache of rows those may change (the inbound
routes) is valid while the epoch it was filled at is current. `run_batch()` and
`write(epoch=False)` do not count: they only write messages and delivery-log rows.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from gravity_sms.store.group_commit import GroupCommit
from gravity_sms.store.tables import metadata

R = TypeVar("R")
BatchFn = Callable[[sqlite3.Connection], Any]
log = logging.getLogger("gravity.store")
CHECKPOINT_SECONDS = 0.5


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
                self._batches: GroupCommit[BatchFn, Any] = GroupCommit(
                    self._flush_batches, max_batch=64, name="sqlite-writer"
                )
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
    async def write(self, *, epoch: bool = True) -> AsyncIterator[AsyncConnection]:
        """A write transaction: committed on success, rolled back on error.

        `epoch=False`: the transaction writes only rows no epoch-checked cache holds (messages,
        the delivery log), so it leaves those caches valid."""
        if self.is_sqlite:
            async with self._write_lock, self.engine.begin() as conn:
                yield conn
        else:
            async with self.engine.begin() as conn:
                yield conn
        if epoch:
            self.epoch += 1

    @property
    def batches(self) -> bool:
        """True when `run_batch()` is available (SQLite on a file)."""
        return self._batch_writer is not None

    async def run_batch(self, fn: Callable[[sqlite3.Connection], R]) -> R:
        """SQLite only: `fn(connection)` in a transaction, committed before this returns.

        Its changes are all or nothing (a savepoint); other callers' functions may share the
        transaction. An exception raised by `fn` is raised here, and only here."""
        assert self._batch_writer is not None, "run_batch needs SQLite on a file"
        result: R = await self._batches.submit(fn)
        return result

    async def _flush_batches(self, fns: Sequence[BatchFn]) -> Sequence[Any]:
        assert self._batch_writer is not None
        async with self._write_lock:
            return await self._batch_writer.run(list(fns))

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
            await self._batches.close()
            async with self._write_lock:
                await self._batch_writer.close()
        await self.engine.dispose()


class SqliteBatchWriter:
    """One `sqlite3` connection, used only from one thread of its own, and the checkpointer."""

    def __init__(self, path: str, *, checkpoint_seconds: float = CHECKPOINT_SECONDS) -> None:
        self.path = path
        self.checkpoint_seconds = checkpoint_seconds
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None
        self._checkpointer: threading.Thread | None = None
        self._stop = threading.Event()

    async def run(self, fns: list[BatchFn]) -> list[Any]:
        """Every function in one transaction, each in a savepoint: its result or its exception."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="sqlite-batch")
            self._stop.clear()
            self._checkpointer = threading.Thread(target=self._checkpoints, name="sqlite-checkpoint", daemon=True)
            self._checkpointer.start()
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._transaction, fns)

    def _transaction(self, fns: list[BatchFn]) -> list[Any]:
        if self._conn is None:
            self._conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=True)
            _sqlite_pragmas(self._conn, None)
            self._conn.execute("PRAGMA wal_autocheckpoint=0")
        conn = self._conn
        results: list[Any] = []
        conn.execute("BEGIN IMMEDIATE")
        try:
            for fn in fns:
                conn.execute("SAVEPOINT batch_item")
                try:
                    results.append(fn(conn))
                except Exception as exc:
                    conn.execute("ROLLBACK TO batch_item")
                    results.append(exc)
                conn.execute("RELEASE batch_item")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return results

    def _checkpoints(self) -> None:
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=True)
        try:
            conn.execute("PRAGMA busy_timeout=30000")
            while not self._stop.wait(self.checkpoint_seconds):
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.Error:
                    log.exception("sqlite.checkpoint_failed")
        finally:
            conn.close()

    async def close(self) -> None:
        executor, self._executor = self._executor, None
        if executor is None:
            return
        await asyncio.get_running_loop().run_in_executor(executor, self._close)
        executor.shutdown(wait=False)
        self._stop.set()
        if self._checkpointer is not None:
            await asyncio.get_running_loop().run_in_executor(None, self._checkpointer.join)
            self._checkpointer = None

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
