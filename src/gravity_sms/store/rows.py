"""Rows for the SQLite batch writer (`Database.run_batch`): one statement, plain tuples.

SQLAlchemy compiles the statement once and gives each column's own bind processor (the
`UTCDateTime` conversion, booleans), so a row written here is stored exactly as `conn.execute`
would store it — the readers cannot tell the two apart. Per row only the processors run: no
compilation, no cache-key work, no per-statement thread hop.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy.sql.dml import Insert

from gravity_sms.store.database import Database

Row = tuple[Any, ...]


class RowWriter:
    def __init__(self, db: Database, statement: Insert, columns: Sequence[str]) -> None:
        dialect = db.engine.dialect
        compiled = statement.compile(dialect=dialect, column_keys=list(columns))
        self.sql = str(compiled)
        order = compiled.positiontup
        assert order is not None and set(order) == set(columns), "statement must bind exactly the columns"
        self.order: tuple[str, ...] = tuple(order)
        table_columns = statement.table.c
        self._processors: tuple[Callable[[Any], Any] | None, ...] = tuple(
            table_columns[name].type.dialect_impl(dialect).bind_processor(dialect) for name in self.order
        )

    def values(self, row: Mapping[str, Any]) -> Row:
        out: list[Any] = []
        last_in: Any = None
        last_out: Any = None
        last_process: Any = None
        for name, process in zip(self.order, self._processors, strict=True):
            value = row[name]
            if process is not None and value is not None:
                # A row often repeats one timestamp (created, updated, due): convert it once.
                if value is not last_in or process is not last_process:
                    last_in, last_out, last_process = value, process(value), process
                value = last_out
            out.append(value)
        return tuple(out)

    def insert_many(self, conn: sqlite3.Connection, rows: Sequence[Row]) -> None:
        conn.executemany(self.sql, rows)

    def insert_each(self, conn: sqlite3.Connection, rows: Sequence[Row]) -> list[bool | None]:
        """Row by row in the caller's transaction: True stored, False absorbed by the statement's
        ON CONFLICT clause, None refused by another constraint (an id collision: retry it)."""
        out: list[bool | None] = []
        for row in rows:
            try:
                out.append(conn.execute(self.sql, row).rowcount == 1)
            except sqlite3.IntegrityError:
                out.append(None)
        return out
