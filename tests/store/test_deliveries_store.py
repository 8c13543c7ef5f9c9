"""The delivery log on both databases: concurrent attempts share one commit, each caller is
answered only once its row is readable, and a refused row fails only its own caller."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime

import pytest
from sqlalchemy.exc import IntegrityError

from gravity_sms.domain.fanout import Delivery
from gravity_sms.store import Database, SqlStore

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def attempt(i: int, message_id: str = "msg_1", *, delivery_id: str | None = None) -> Delivery:
    return Delivery(
        id=delivery_id or f"dlv_{i:04d}",
        tenant_id="tenant_a",
        app_id=f"app_{i}" if i % 2 else None,
        trigger_id=None if i % 2 else f"trg_{i}",
        message_id=message_id,
        url="https://hooks.example/x",
        status_code=200 if i % 3 else None,
        success=bool(i % 3),
        error=None if i % 3 else "Timed out after 5s",
        duration_ms=i,
        created_at=T0,
    )


async def test_concurrent_records_are_all_durable_when_answered(database: Database) -> None:
    store = SqlStore(database).deliveries
    batch = [attempt(i) for i in range(60)]
    await asyncio.gather(*(store.record(d) for d in batch))
    stored = await store.for_message("msg_1")
    assert sorted(stored, key=lambda d: d.id) == sorted(batch, key=lambda d: d.id)
    expected = {(None, d.trigger_id) if d.trigger_id else (d.app_id, None) for d in batch}
    assert await store.delivered_keys("msg_1") == expected


async def test_a_refused_row_fails_only_its_caller(database: Database) -> None:
    store = SqlStore(database).deliveries
    await store.record(attempt(0, delivery_id="dlv_taken"))
    results = await asyncio.gather(
        *(store.record(attempt(i, "msg_2")) for i in range(1, 6)),
        store.record(attempt(6, "msg_2", delivery_id="dlv_taken")),  # primary key already used
        *(store.record(attempt(i, "msg_2")) for i in range(7, 12)),
        return_exceptions=True,
    )
    failures = [r for r in results if isinstance(r, BaseException)]
    assert len(failures) == 1 and results[5] is failures[0]
    assert isinstance(failures[0], (sqlite3.IntegrityError, IntegrityError))
    assert len(await store.for_message("msg_2")) == 10
    with pytest.raises((sqlite3.IntegrityError, IntegrityError)):
        await store.record(attempt(0, delivery_id="dlv_taken"))
