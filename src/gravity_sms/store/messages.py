"""Message rows: the inbound insert with dedup, the history query, the fan-out outbox, retention.

Inbound dedup is race-free on both databases through the partial unique index
`uq_messages_inbound_rc` (`INSERT … ON CONFLICT DO NOTHING`), so concurrent duplicates of one
RingCentral event store one row. `fanout_pending` is the fan-out outbox; the lease columns,
unused by inbound rows otherwise, say which dispatcher is delivering it until when.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict, namedtuple
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Dialect, Select, and_, bindparam, delete, func, or_, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from gravity_sms.domain.clock import Clock, SystemClock
from gravity_sms.domain.history import MessageQuery
from gravity_sms.domain.ids import new_message_id
from gravity_sms.domain.inbound import InboundRoute
from gravity_sms.domain.models import Message
from gravity_sms.store.database import Database
from gravity_sms.store.group_commit import GroupCommit
from gravity_sms.store.rows import RowWriter
from gravity_sms.store.tables import messages, rc_extensions, rc_subscriptions, tenants

# `total` of a listing (docs/api-notes.md): exact up to EXACT_COUNT_LIMIT matches; past it, the
# last full count of the filter set, recounted in the background (LargeCounts).
EXACT_COUNT_LIMIT = 10_000
COUNT_REFRESH_SECONDS = 10.0
# A full count that took t seconds is not repeated within COUNT_REFRESH_COST * t (a 1 s count of a
# huge table: at most every 50 s), so recounts cost a filter set at most ~2 % of one connection.
COUNT_REFRESH_COST = 50.0
COUNT_CACHE_SIZE = 1024
# Recounts waiting for a connection slot; a filter set past this many is recounted by a later request.
COUNT_MAX_PENDING = 64
# Inbound routes: how long a node trusts a cached subscription row that another node may change.
ROUTE_CACHE_SECONDS = 1.0
ROUTE_CACHE_SIZE = 4096
# Outbound rows the sender still owns are never removed by retention.
_LIVE_OUTBOUND = ("queued", "sending")
_INBOUND_WHERE = text("direction = 'inbound'")
# Spelled as the partial index `ix_messages_fanout` is: SQLite uses a partial index only for a
# WHERE term matching the index's own, and SQLAlchemy writes the bare column as `= 1` there.
FANOUT_PENDING = text("messages.fanout_pending")
_PG_INBOUND_INSERT = (
    postgresql.insert(messages)
    .on_conflict_do_nothing(index_elements=["tenant_id", "rc_message_id"], index_where=_INBOUND_WHERE)
    .returning(messages.c.id)
)

log = logging.getLogger("gravity.store")


def message_from_row(row: Any) -> Message:
    return Message(
        id=row.id,
        tenant_id=row.tenant_id,
        direction=row.direction,
        status=row.status,
        from_number=row.from_number,
        to_number=row.to_number,
        body=row.body,
        created_at=row.created_at,
        updated_at=row.updated_at,
        app_id=row.app_id,
        user_id=row.user_id,
        rc_message_id=row.rc_message_id,
        error=row.error,
        rc_created_at=row.rc_created_at,
    )


# The filters of a listing as bound parameters: one statement per set of filters in use, so a
# listing builds and compiles nothing per request.
_FILTER_SQL: dict[str, ColumnElement[bool]] = {
    "tenant_id": messages.c.tenant_id == bindparam("tenant_id"),
    "direction": messages.c.direction == bindparam("direction"),
    "status": messages.c.status == bindparam("status"),
    "from_number": messages.c.from_number == bindparam("from_number"),
    "to_number": messages.c.to_number == bindparam("to_number"),
    "start": messages.c.created_at >= bindparam("start"),
    "end": messages.c.created_at <= bindparam("end"),
}
# The columns a listed message needs (message_from_row): no queue, lease or outbox columns.
_LISTED = tuple(
    messages.c[name]
    for name in (
        "id",
        "tenant_id",
        "direction",
        "status",
        "from_number",
        "to_number",
        "body",
        "created_at",
        "updated_at",
        "app_id",
        "user_id",
        "rc_message_id",
        "error",
        "rc_created_at",
    )
)


def _filter_params(query: MessageQuery) -> dict[str, Any]:
    return {name: value for name in _FILTER_SQL if (value := getattr(query, name)) is not None}


def _count_key(query: MessageQuery) -> tuple[Any, ...]:
    """The filter set of a query: what its `total` depends on (not the page)."""
    q = query
    return (q.tenant_id, q.direction, q.status, q.from_number, q.to_number, q.start, q.end)


def _page_sql(names: tuple[str, ...]) -> Select[Any]:
    """A deferred join: the page's ids come from the covering (filter, created_at, id) index
    alone, and only those rows are read from the table. `SELECT * … OFFSET n` would read the
    n skipped rows too (page 500: 9,980 heap fetches, ~300 ms on PostgreSQL at 1M rows)."""
    c = messages.c
    ids = (
        select(c.id, c.created_at)
        .where(*(_FILTER_SQL[name] for name in names))
        .order_by(c.created_at.desc(), c.id.desc())
        .limit(bindparam("limit"))
        .offset(bindparam("offset"))
        .subquery("page_ids")
    )
    return select(*_LISTED).join(ids, c.id == ids.c.id).order_by(ids.c.created_at.desc(), ids.c.id.desc())


def _capped_count_sql(names: tuple[str, ...]) -> Select[Any]:
    """Matches up to EXACT_COUNT_LIMIT + 1: a bounded index scan, a few ms."""
    where = (_FILTER_SQL[name] for name in names)
    return select(func.count()).select_from(select(messages.c.id).where(*where).limit(EXACT_COUNT_LIMIT + 1).subquery())


def _count_sql(names: tuple[str, ...]) -> Select[Any]:
    return select(func.count()).select_from(messages).where(*(_FILTER_SQL[name] for name in names))


class _Prepared:
    """A listing statement compiled once, run on the driver's own connection with SQLAlchemy's
    type processors applied as `conn.execute` would (as `RowWriter` does for writes).

    SQLite: one trip to the connection's thread (aiosqlite's `execute_fetchall`) instead of the
    four SQLAlchemy's cursor makes (cursor, execute, fetch, close); under load each trip back
    waits for the busy event loop to hand over the GIL, which set the listing's tail latency.
    PostgreSQL: one round trip (asyncpg's `fetch`, its own prepared-statement cache), no
    BEGIN/ROLLBACK around a single read."""

    def __init__(self, stmt: Select[Any], dialect: Dialect) -> None:
        self.stmt = stmt
        self.sqlite = dialect.name == "sqlite"
        compiled = stmt.compile(dialect=dialect)
        assert compiled.positiontup is not None, "SQLite and asyncpg binds are positional"
        self.sql = str(compiled)
        self.binds = tuple(
            (name, compiled.binds[name].value, compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect))
            for name in compiled.positiontup
        )
        columns = list(stmt.selected_columns)
        self.results = tuple(col.type.dialect_impl(dialect).result_processor(dialect, None) for col in columns)
        self.row: Any = namedtuple("ListedRow", [col.key for col in columns], rename=True)  # type: ignore[misc]

    async def all(self, conn: Any, params: dict[str, Any]) -> Sequence[Any]:
        args = []
        for name, default, process in self.binds:
            value = params.get(name, default)
            args.append(process(value) if process is not None and value is not None else value)
        driver = (await conn.get_raw_connection()).driver_connection
        if self.sqlite:
            rows = await driver.execute_fetchall(self.sql, args)
        else:
            rows = await driver.fetch(self.sql, *args)
        results = self.results
        return [self.row._make([v if p is None else p(v) for p, v in zip(results, row, strict=True)]) for row in rows]


class LargeCounts:
    """`total` past EXACT_COUNT_LIMIT: the last full count of each filter set, recounted in the
    background, so that no request waits for a full count (65-75 ms per half a million index
    entries on either database).

    A request only reads this cache (`get`). A count due for a recount is still answered (stale
    while revalidate) and starts one recount of its filter set (single flight); at most
    `parallel` counts run at once, at most COUNT_MAX_PENDING wait for a slot, and the cache
    holds the COUNT_CACHE_SIZE filter sets used most recently. Each node counts on its own.
    """

    def __init__(self, count: Callable[[MessageQuery], Awaitable[int]], clock: Clock, *, parallel: int) -> None:
        self._count = count
        self.clock = clock
        # filter set -> (count, monotonic time from which it is recounted), least recently used first
        self._values: OrderedDict[tuple[Any, ...], tuple[int, float]] = OrderedDict()
        self._pending: dict[tuple[Any, ...], asyncio.Task[None]] = {}
        self._slots = asyncio.Semaphore(parallel)

    def get(self, key: tuple[Any, ...], query: MessageQuery) -> int | None:
        entry = self._values.get(key)
        if entry is None:
            return None
        self._values.move_to_end(key)
        if entry[1] <= self.clock.monotonic():
            self.recount(key, query)
        return entry[0]

    def recount(self, key: tuple[Any, ...], query: MessageQuery) -> None:
        """Start a full count of `key` in the background unless one is already pending."""
        if key in self._pending or len(self._pending) >= COUNT_MAX_PENDING:
            return
        task = asyncio.get_running_loop().create_task(self._recount(key, query), name="listing-count")
        self._pending[key] = task
        task.add_done_callback(lambda _task: self._pending.pop(key, None))

    async def _recount(self, key: tuple[Any, ...], query: MessageQuery) -> None:
        async with self._slots:
            started = self.clock.monotonic()
            try:
                value = await self._count(query)
            except Exception:
                log.warning("listing.count_failed", exc_info=True)
                if key in self._values:  # keep answering the old count; try again later
                    self._values[key] = (self._values[key][0], self.clock.monotonic() + COUNT_REFRESH_SECONDS)
                return
            took = self.clock.monotonic() - started
        if value <= EXACT_COUNT_LIMIT:
            self._values.pop(key, None)  # small again: requests count it exactly
            return
        self._values[key] = (value, self.clock.monotonic() + max(COUNT_REFRESH_SECONDS, COUNT_REFRESH_COST * took))
        self._values.move_to_end(key)
        while len(self._values) > COUNT_CACHE_SIZE:
            self._values.popitem(last=False)

    async def settle(self) -> None:
        """Wait for the counts in flight (tests)."""
        while self._pending:
            await asyncio.gather(*list(self._pending.values()), return_exceptions=True)

    async def close(self) -> None:
        """Shutdown: cancel the counts in flight (a count is only ever a cache refresh)."""
        tasks = list(self._pending.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


class SqlMessageStore:
    def __init__(self, db: Database, *, clock: Clock | None = None) -> None:
        self.db = db
        # Asked before each inbound insert (the runtime wires the dispatcher's answer): False
        # stores the row as already fanned out, so a tenant without targets costs no outbox write.
        self.fanout_needed: Callable[[Message], bool] = lambda _msg: True
        self.counts = LargeCounts(self._count_all, clock or SystemClock(), parallel=1 if db.is_sqlite else 2)
        self._listing: dict[tuple[Callable[..., Select[Any]], tuple[str, ...]], _Prepared] = {}
        # subscription id -> (route or None, database epoch when read, monotonic expiry)
        self._routes: dict[str, tuple[InboundRoute | None, int, float]] = {}
        # PostgreSQL runs a few batches at once over the pool; SQLite has one writer.
        self._inserts: GroupCommit[_NewInbound, Message | None] = GroupCommit(
            self._flush_inbound, max_batch=256, parallel=1 if db.is_sqlite else 4, name="inbound-group-commit"
        )
        self._finishes: GroupCommit[str, None] = GroupCommit(
            self._flush_finished, max_batch=512, parallel=1 if db.is_sqlite else 2, name="fanout-finish"
        )
        self._rows = (
            RowWriter(
                db,
                sqlite.insert(messages).on_conflict_do_nothing(
                    index_elements=["tenant_id", "rc_message_id"], index_where=_INBOUND_WHERE
                ),
                INBOUND_COLUMNS,
            )
            if db.batches
            else None
        )

    async def get(self, message_id: str) -> Message | None:
        async with self.db.read() as conn:
            row = (await conn.execute(select(messages).where(messages.c.id == message_id))).first()
        return message_from_row(row) if row else None

    # --- inbound ----------------------------------------------------------------------------
    async def inbound_route(self, subscription_id: str) -> InboundRoute | None:
        """The route, from a cache valid until any other write commits here (`Database.epoch`:
        a replaced or deleted subscription, a disconnect, a suspension) and for at most
        ROUTE_CACHE_SECONDS (a change made by another node)."""
        now = time.monotonic()
        cached = self._routes.get(subscription_id)
        if cached is not None and cached[1] == self.db.epoch and cached[2] > now:
            return cached[0]
        epoch = self.db.epoch
        route = await self._read_route(subscription_id)
        if len(self._routes) >= ROUTE_CACHE_SIZE:
            self._routes.clear()
        self._routes[subscription_id] = (route, epoch, now + ROUTE_CACHE_SECONDS)
        return route

    async def _read_route(self, subscription_id: str) -> InboundRoute | None:
        s, t, e = rc_subscriptions.c, tenants.c, rc_extensions.c
        query = (
            select(
                s.id,
                s.tenant_id,
                s.extension_id,
                s.verification_token_hash,
                s.status,
                t.status.label("tenant_status"),
                e.status.label("extension_status"),
            )
            .select_from(
                rc_subscriptions.outerjoin(tenants, t.id == s.tenant_id).outerjoin(
                    rc_extensions, and_(e.tenant_id == s.tenant_id, e.extension_id == s.extension_id)
                )
            )
            .where(s.id == subscription_id)
        )
        async with self.db.read() as conn:
            row = (await conn.execute(query)).first()
        if row is None:
            return None
        return InboundRoute(
            subscription_id=row.id,
            tenant_id=row.tenant_id,
            extension_id=row.extension_id,
            verification_token_hash=row.verification_token_hash,
            subscription_status=row.status,
            tenant_status=row.tenant_status,
            extension_status=row.extension_status,
        )

    def _insert(self) -> Any:
        return sqlite.insert(messages) if self.db.is_sqlite else postgresql.insert(messages)

    async def insert_inbound(self, msg: Message, *, lease_owner: str | None, lease_seconds: float) -> Message | None:
        """Insert as `received` with `fanout_pending`; None when the RingCentral id is stored.

        On SQLite concurrent events share one transaction (group commit); the answer comes after its
        commit. A message-id collision (CSPRNG, 48 bits) is caught by the primary key and retried
        with a fresh id; the RingCentral-id conflict is absorbed by ON CONFLICT DO NOTHING.
        """
        item = _NewInbound(msg, lease_owner, lease_seconds, self.fanout_needed(msg))
        return await self._inserts.submit(item)

    async def _flush_inbound(self, batch: Sequence[_NewInbound]) -> list[Message | BaseException | None]:
        rows = self._rows
        if rows is None:
            return await self._flush_inbound_pg(batch)
        values = [rows.values(item.values()) for item in batch]
        try:
            stored = await self.db.run_batch(lambda conn: rows.insert_each(conn, values))
        except Exception:
            return [await self._insert_one(item) for item in batch]
        out: list[Message | BaseException | None] = []
        for item, ok in zip(batch, stored, strict=True):
            if ok is None:
                out.append(await self._insert_one(item.renamed()))
            else:
                out.append(item.msg if ok else None)
        return out

    async def _flush_inbound_pg(self, batch: Sequence[_NewInbound]) -> list[Message | BaseException | None]:
        """PostgreSQL: the batch in one multi-row INSERT; RETURNING names the rows stored (a
        duplicate RingCentral id, in the table or twice in the batch, is skipped)."""
        try:
            async with self.db.write(epoch=False) as conn:
                # executemany with RETURNING: SQLAlchemy's "insertmanyvalues" sends multi-row
                # INSERTs from one cached compilation (a .values([...]) list compiles per batch).
                result = await conn.execute(_PG_INBOUND_INSERT, [item.values() for item in batch])
                stored = set(result.scalars())
        except IntegrityError:  # a message-id collision: each on its own, with fresh ids
            return [await self._insert_one(item) for item in batch]
        except Exception as exc:
            return [exc] * len(batch)
        return [item.msg if item.msg.id in stored else None for item in batch]

    async def _insert_one(self, item: _NewInbound) -> Message | BaseException | None:
        try:
            for _ in range(5):
                stmt = (
                    self._insert()
                    .values(**item.values())
                    .on_conflict_do_nothing(index_elements=["tenant_id", "rc_message_id"], index_where=_INBOUND_WHERE)
                )
                try:
                    async with self.db.write(epoch=False) as conn:
                        result = await conn.execute(stmt)
                except IntegrityError:
                    item = item.renamed()
                    continue
                return item.msg if result.rowcount == 1 else None
            raise RuntimeError("could not allocate a unique message id")
        except Exception as exc:
            return exc

    async def find_inbound(self, tenant_id: str, rc_message_id: str) -> Message | None:
        c = messages.c
        query = select(messages).where(
            c.tenant_id == tenant_id, c.rc_message_id == rc_message_id, c.direction == "inbound"
        )
        async with self.db.read() as conn:
            row = (await conn.execute(query)).first()
        return message_from_row(row) if row else None

    # --- history ----------------------------------------------------------------------------
    async def search(self, query: MessageQuery) -> tuple[list[Message], int]:
        """Newest first, ties by id: one index range scan per filter (see docs/webhooks.md), the
        page's rows by a deferred join (`_page_sql`)."""
        params = _filter_params(query)
        offset = (query.page - 1) * query.limit
        page = self._prepared(_page_sql, tuple(params))
        async with self.db.read() as conn:
            rows = await page.all(conn, params | {"limit": query.limit, "offset": offset})
            total = await self._total(conn, query, params, offset, len(rows))
        return [message_from_row(r) for r in rows], total

    def _prepared(self, build: Callable[[tuple[str, ...]], Select[Any]], names: tuple[str, ...]) -> _Prepared:
        key = (build, names)  # at most 2^7 filter sets per statement
        prepared = self._listing.get(key)
        if prepared is None:
            prepared = self._listing[key] = _Prepared(build(names), self.db.engine.dialect)
        return prepared

    async def _total(self, conn: Any, query: MessageQuery, params: dict[str, Any], offset: int, found: int) -> int:
        """Exact up to EXACT_COUNT_LIMIT matches; past it, the cached full count (LargeCounts),
        never counted inside the request (docs/api-notes.md, "Message history")."""
        if 0 < found < query.limit or (found == 0 and offset == 0):
            return offset + found  # the last page is this one: no count needed
        key = _count_key(query)
        cached = self.counts.get(key, query)
        if cached is not None:
            return max(cached, offset + found)
        if offset + found <= EXACT_COUNT_LIMIT:
            capped = await self._prepared(_capped_count_sql, tuple(params)).all(conn, params)
            total = int(capped[0][0])
            if total <= EXACT_COUNT_LIMIT:
                return total
        # A large result never counted on this node: "more than EXACT_COUNT_LIMIT" until the
        # background count lands (for a page past the limit, at least the rows up to this page).
        self.counts.recount(key, query)
        return max(EXACT_COUNT_LIMIT + 1, offset + found)

    async def _count_all(self, query: MessageQuery) -> int:
        """The full count LargeCounts runs off the request path. On PostgreSQL without parallel
        workers: one core for ~75 ms at half a million matches rather than three processes
        competing with the requests for ~55 ms."""
        params = _filter_params(query)
        count = self._prepared(_count_sql, tuple(params))
        async with self.db.read() as conn:
            if not self.db.is_sqlite:
                await conn.execute(text("SET LOCAL max_parallel_workers_per_gather = 0"))
            return int((await conn.execute(count.stmt, params)).scalar_one())

    # --- fan-out outbox -----------------------------------------------------------------------
    @staticmethod
    def pending_fanout_query(now: datetime, older_than: datetime, limit: int) -> Any:
        """Pending messages whose lease is free, oldest first (through `ix_messages_fanout`)."""
        c = messages.c
        free = or_(c.lease_expires_at.is_(None), c.lease_expires_at < now)
        return select(c.id).where(FANOUT_PENDING, c.created_at <= older_than, free).order_by(c.created_at).limit(limit)

    async def claim_fanout(
        self, owner: str, now: datetime, older_than: datetime, lease_seconds: float, limit: int
    ) -> list[Message]:
        """Take the lease of up to `limit` pending messages created before `older_than`.

        The guard on the lease is repeated in the UPDATE, so two dispatchers (two nodes) never
        both take one message: PostgreSQL re-checks it after the row lock, SQLite has one writer.
        """
        c = messages.c
        free = or_(c.lease_expires_at.is_(None), c.lease_expires_at < now)
        pending = self.pending_fanout_query(now, older_than, limit)
        if not self.db.is_sqlite:
            # Rows another dispatcher is claiming right now are skipped, not waited for.
            pending = pending.with_for_update(skip_locked=True)
        until = now + timedelta(seconds=lease_seconds)
        async with self.db.write(epoch=False) as conn:
            ids = list((await conn.execute(pending)).scalars())
            if not ids:
                return []
            await conn.execute(
                update(messages)
                .where(c.id.in_(ids), FANOUT_PENDING, free)
                .values(lease_owner=owner, lease_expires_at=until)
            )
            rows = (
                await conn.execute(
                    select(messages).where(c.id.in_(ids), c.lease_owner == owner, c.lease_expires_at == until)
                )
            ).all()
        return [message_from_row(r) for r in rows]

    async def finish_fanout(self, message_ids: list[str]) -> None:
        """Concurrent finishes (one per fanned-out message) share one UPDATE."""
        if not message_ids:
            return
        await asyncio.gather(*(self._finishes.submit(message_id) for message_id in message_ids))

    async def _flush_finished(self, message_ids: Sequence[str]) -> list[None]:
        ids = list(message_ids)
        if self.db.batches:
            await self.db.run_batch(lambda conn: conn.executemany(_FINISH_SQL, [(i,) for i in ids]))
        else:
            async with self.db.write(epoch=False) as conn:
                await conn.execute(
                    update(messages)
                    .where(messages.c.id.in_(ids))
                    .values(fanout_pending=False, lease_owner=None, lease_expires_at=None)
                )
        return [None] * len(ids)

    async def release_fanout(self, message_ids: list[str]) -> None:
        """Give leases back (graceful shutdown): another dispatcher may take them at once."""
        if not message_ids:
            return
        async with self.db.write(epoch=False) as conn:
            await conn.execute(
                update(messages)
                .where(messages.c.id.in_(message_ids), messages.c.fanout_pending)
                .values(lease_owner=None, lease_expires_at=None)
            )

    # --- retention ----------------------------------------------------------------------------
    async def delete_older_than(self, cutoff: datetime, batch: int) -> int:
        """Delete one batch of messages created before `cutoff`; returns how many went.

        Small batches keep each write transaction short (SQLite has one writer; PostgreSQL
        holds the row locks only for the batch).
        """
        c = messages.c
        victims = (
            select(c.id)
            .where(c.created_at < cutoff, c.status.not_in(_LIVE_OUTBOUND))
            .order_by(c.created_at)
            .limit(batch)
            .scalar_subquery()
        )
        async with self.db.write(epoch=False) as conn:
            result = await conn.execute(delete(messages).where(c.id.in_(victims)))
        return int(result.rowcount or 0)


def _fields(msg: Message) -> dict[str, Any]:
    return {name: getattr(msg, name) for name in Message.__dataclass_fields__}


INBOUND_COLUMNS = (
    "id",
    "tenant_id",
    "direction",
    "status",
    "from_number",
    "to_number",
    "body",
    "rc_message_id",
    "rc_created_at",
    "extension_id",
    "created_at",
    "updated_at",
    "fanout_pending",
    "lease_owner",
    "lease_expires_at",
)
_FINISH_SQL = "UPDATE messages SET fanout_pending = 0, lease_owner = NULL, lease_expires_at = NULL WHERE id = ?"


@dataclass(frozen=True, slots=True)
class _NewInbound:
    msg: Message
    lease_owner: str | None
    lease_seconds: float
    pending: bool = True

    def values(self) -> dict[str, Any]:
        msg = self.msg
        owner = self.lease_owner if self.pending else None
        lease_until = msg.created_at + timedelta(seconds=self.lease_seconds) if owner else None
        return {
            "id": msg.id,
            "tenant_id": msg.tenant_id,
            "direction": "inbound",
            "status": msg.status,
            "from_number": msg.from_number,
            "to_number": msg.to_number,
            "body": msg.body,
            "rc_message_id": msg.rc_message_id,
            "rc_created_at": msg.rc_created_at,
            "extension_id": msg.extra.get("extension_id"),
            "created_at": msg.created_at,
            "updated_at": msg.updated_at,
            "fanout_pending": self.pending,
            "lease_owner": owner,
            "lease_expires_at": lease_until,
        }

    def renamed(self) -> _NewInbound:
        """The same message under a fresh id (after an id collision)."""
        return _NewInbound(
            Message(**{**_fields(self.msg), "id": new_message_id()}), self.lease_owner, self.lease_seconds, self.pending
        )
