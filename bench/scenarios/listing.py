"""B7: `GET /v1/sms/messages` with one filter over 1,000,000 stored messages, on SQLite and
PostgreSQL, page 1 and page 500.

The rows are bulk-loaded straight into the `messages` table (the API would take many minutes
to insert a million rows; the listing, not the insert, is measured here). They all belong to
the one measured tenant — the worst case for `total`, which must count every match — half
inbound, half outbound, over 80 days (inside the 90-day retention), none queued (so the outbound worker stays idle).
The load is stated: 4 connections, closed loop.

Past 10,000 matches `total` is counted in the background (docs/api-notes.md): the first answer
says "more than 10,000" and the exact count follows; the check waits for it, then the measured
runs include the background recounts due every 10 s.
"""

from __future__ import annotations

import asyncio
import random
import secrets
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from bench.procs import CpuMeter
from bench.report import Outcome
from bench.scenarios.common import Ctx, ms, verdict
from bench.stack import NotAvailable, Stack

STATUSES_OUT = ["sent", "delivered", "delivered", "delivered", "failed"]
CONNECTIONS = 4
FILTER = "direction=inbound"


def _rows(tenant_id: str, n: int, start: int = 0) -> list[dict[str, Any]]:
    rng = random.Random(start)
    now = datetime.now(UTC)
    rows = []
    for i in range(start, start + n):
        inbound = i % 2 == 0
        created = now - timedelta(seconds=rng.uniform(0, 80 * 86400))  # inside the 90-day retention
        rows.append(
            {
                "id": "msg_" + secrets.token_hex(6),
                "tenant_id": tenant_id,
                "app_id": None,
                "user_id": None,
                "direction": "inbound" if inbound else "outbound",
                "status": "received" if inbound else rng.choice(STATUSES_OUT),
                "from_number": f"+1555{rng.randrange(10**7):07d}",
                "to_number": f"+1555{rng.randrange(10**7):07d}",
                "body": f"Hello there, this is message number {i} of the benchmark.",
                "rc_message_id": str(10**12 + i),
                "error": None,
                "rc_created_at": created,
                "created_at": created,
                "updated_at": created,
                "attempts": 1,
                "parts_sent": 0 if inbound else 1,
                "fanout_pending": False,
            }
        )
    return rows


def load_sqlite(path: str, tenant_id: str, n: int) -> None:
    from sqlalchemy import create_engine

    from gravity_sms.store.tables import messages

    engine = create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        for start in range(0, n, 20000):
            conn.execute(messages.insert(), _rows(tenant_id, min(20000, n - start), start))
    with engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE")
    engine.dispose()


def load_postgres(url: str, tenant_id: str, n: int) -> None:
    import asyncpg

    from gravity_sms.store.tables import messages

    async def go() -> None:
        conn = await asyncpg.connect(url)
        try:
            for start in range(0, n, 50000):
                rows = _rows(tenant_id, min(50000, n - start), start)
                cols = list(rows[0])
                await conn.copy_records_to_table(
                    messages.name, records=[tuple(r[c] for c in cols) for r in rows], columns=cols
                )
            # a table that has been in service is vacuumed (visibility map, hint bits) and analysed
            await conn.execute("VACUUM ANALYZE messages")
        finally:
            await conn.close()

    asyncio.run(go())


def _exact_listing(path: str, headers: dict[str, str], expected: int, wait: float = 60.0) -> dict[str, Any]:
    """The listing once its `total` is the exact count (eventually exact past 10,000 matches)."""
    deadline = time.monotonic() + wait
    while True:
        r = httpx.get(path, headers=headers, timeout=60)
        if r.status_code == 404:
            raise NotAvailable("GET /v1/sms/messages answered 404 (route not built yet)")
        if r.status_code != 200:
            raise RuntimeError(f"listing answered {r.status_code}: {r.text[:200]}")
        data: dict[str, Any] = r.json()
        if data.get("total") == expected:
            return data
        if time.monotonic() > deadline:
            raise RuntimeError(f"listing total={data.get('total')}, not {expected} after {wait:.0f} s")
        time.sleep(0.2)


def _one_backend(ctx: Ctx, backend: str, n: int) -> dict[str, Any]:
    with Stack(f"b7-{backend}") as st:
        if backend == "postgres":
            url = st.use_fresh_postgres()
            st.cli("migrate")
        tenant = st.create_tenant("Bench")
        if backend == "postgres":
            load_postgres(url, tenant.tenant_id, n)
        else:
            load_sqlite(str(st.dir / "data" / "gravity.db"), tenant.tenant_id, n)
        node = st.start_gateway()
        result: dict[str, Any] = {}
        for page in (1, 500):
            path = f"{node.url}/v1/sms/messages?{FILTER}&page={page}&limit=20"
            data = _exact_listing(path, tenant.headers, n // 2)
            if len(data.get("messages", [])) != 20:
                raise RuntimeError(f"listing returned {len(data.get('messages', []))} rows")
            meter = CpuMeter({"gateway": node.proc.pid})
            res = ctx.load(path, headers=tenant.headers, connections=CONNECTIONS, duration=1 if ctx.quick else 10)
            result[f"page{page}"] = {"load": res, "cpu": meter.shares()}
        return result


def b7_listing(ctx: Ctx) -> Outcome:
    n = 10_000 if ctx.quick else 1_000_000
    out = Outcome(
        "B7",
        f"GET /v1/sms/messages?{FILTER}, {n:,} rows, page 1 and 500, {CONNECTIONS} connections",
        "p99 ≤ 50 ms (SQLite and PostgreSQL)",
    )
    figures, worst, clean = [], 0.0, True
    for backend in ("sqlite", "postgres"):
        try:
            result = _one_backend(ctx, backend, n)
        except NotAvailable:
            raise
        except Exception as exc:
            out.notes.append(f"{backend}: {type(exc).__name__}: {exc}"[:300])
            clean = False
            continue
        for page, item in result.items():
            res = item["load"]
            worst = max(worst, res.p99_ms)
            clean &= res.non_2xx == 0 and res.errors == 0
            figures.append(f"{backend} {page}: p99 {ms(res.p99_ms)} ({res.rps:,.0f} req/s)")
            out.curves[f"{backend} {page}"] = res.curve
            out.metrics[f"{backend}_{page}"] = res.public() | {"curve": None, "cpu": item["cpu"]}
    out.figure = "; ".join(figures)
    out.baseline = "none (absolute target)"
    out.verdict = verdict(clean and len(figures) == 4 and worst <= 50.0)
    return out
