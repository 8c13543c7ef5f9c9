"""R3 and R4: several gateway nodes sharing PostgreSQL and Redis.

R3: the same inbound event delivered 1-10 times, concurrently, to different nodes; counted in
the store (one message per event) and at the receiver (one delivery per app per event).
R4: three nodes, one killed (kill -9) mid-load: each SMS reaches RingCentral exactly once, the
survivors' WebSocket clients all receive an event raised on one node, a per-key rate limit is
shared (not multiplied by the node count), and a storm of sends after the access token
expired makes exactly one refresh call.
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

import httpx
import orjson
from bench.report import Outcome
from bench.scenarios.common import event_body
from bench.stack import Stack, Tenant, wait_until

from stress.common import (
    EXT1,
    NUMBER1,
    TERMINAL,
    UNTHROTTLED_EMULATOR,
    SCtx,
    Sender,
    duplicates,
    emulator_sms,
    list_messages,
    receiver_records,
)

REDIS_DB = "redis://127.0.0.1:6379/13"  # a database of its own, away from the unit tests'


def _cluster(name: str, nodes: int, apps: int, env: dict[str, str] | None = None) -> tuple[Stack, Tenant]:
    st = Stack(name, redis=True)
    try:
        st.redis_url = _redis_url()
        st.use_fresh_postgres()
        st.cli("migrate")
        st.start_emulator(config=UNTHROTTLED_EMULATOR)
        st.receiver = st.start_reference("receiver")
        tenant = st.create_tenant("Cluster", [f"{st.receiver.url}/hook/a{i}" for i in range(apps)])
        st.extra_env.update({"GRAVITY_SEND_RATE_PER_NUMBER": "1000000", **(env or {})})
        for _ in range(nodes):
            st.start_gateway(wait=False)  # start together, then wait for each
        for node in st.nodes:
            node.proc.wait_http(f"{node.url}/ready", timeout=60)
        st.connect(st.nodes[0], tenant, EXT1)
        return st, tenant
    except BaseException:
        st.close()
        raise


def _redis_url() -> str:
    import os

    base = os.environ.get("GRAVITY_TEST_REDIS_URL")
    return base.rsplit("/", 1)[0] + "/13" if base else REDIS_DB


def _flush_redis(url: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    try:
        client.flushdb()
    finally:
        client.close()


def r3_duplicates(ctx: SCtx) -> Outcome:
    events = ctx.size(500, 40)
    out = Outcome(
        "R3",
        f"{events} inbound events, each delivered 1-10 times concurrently to 3 nodes",
        "exactly one stored message and one fan-out per app per event",
    )
    _flush_redis(_redis_url())
    st, tenant = _cluster("r3", nodes=3, apps=2)
    with st:
        sub, token = st.verification_token(NUMBER1)
        body = event_body(sub, EXT1, NUMBER1)
        rng = random.Random(3)
        copies = [rng.randint(1, 10) for _ in range(events)]
        statuses: dict[int, int] = {}

        async def blast() -> None:
            async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=200)) as http:
                for start in range(0, events, 20):
                    calls = []
                    for e in range(start, min(events, start + 20)):
                        payload = body.replace("__ID__", f"33{e:09d}")
                        for _ in range(copies[e]):
                            node = rng.choice(st.nodes)
                            calls.append(
                                http.post(
                                    f"{node.url}/v1/webhooks/ringcentral",
                                    content=payload,
                                    headers={"Verification-Token": token, "Content-Type": "application/json"},
                                )
                            )
                    for r in await asyncio.gather(*calls, return_exceptions=True):
                        code = r.status_code if isinstance(r, httpx.Response) else -1
                        statuses[code] = statuses.get(code, 0) + 1

        asyncio.run(blast())
        ids = {f"33{e:09d}" for e in range(events)}
        wait_until(lambda: len([1 for n, k, _ in receiver_records(st) if k in ids]) >= 2 * events, 60, 0.5)
        time.sleep(2.0)  # a late duplicate delivery would land now
        stored = [m for m in list_messages(st.nodes[0], tenant, "inbound") if m["rcMessageId"] in ids]
        records = [(n, k) for n, k, _ in receiver_records(st) if k in ids]
    per_event_stored = {}
    for m in stored:
        per_event_stored[m["rcMessageId"]] = per_event_stored.get(m["rcMessageId"], 0) + 1
    missing = len(ids - set(per_event_stored))
    extra_stored = sum(c - 1 for c in per_event_stored.values())
    delivered_pairs = set(records)
    dup_deliveries = len(records) - len(delivered_pairs)
    missing_deliveries = 2 * events - len(delivered_pairs)
    out.figure = (
        f"{sum(copies):,} copies of {events} events: {len(per_event_stored)} stored once, {extra_stored} extra stored, "
        f"{missing} missing; {len(delivered_pairs)}/{2 * events} app deliveries, {dup_deliveries} duplicates"
    )
    out.baseline = f"answers: {statuses}"
    out.metrics = {
        "events": events,
        "copies": sum(copies),
        "stored_extra": extra_stored,
        "missing": missing,
        "duplicate_deliveries": dup_deliveries,
        "missing_deliveries": missing_deliveries,
        "answers": statuses,
    }
    non_200 = sum(v for k, v in statuses.items() if k != 200)
    if non_200:
        out.notes.append(f"{non_200} copies were not answered 200: {statuses}")
    out.verdict = "PASS" if not (extra_stored or missing or dup_deliveries or missing_deliveries) else "MISS"
    return out


async def _ws_listen(url: str, key: str, ready: asyncio.Event, got: list[str], stop: asyncio.Event) -> None:
    import websockets

    async with websockets.connect(url, open_timeout=30, ping_interval=None) as ws:
        await ws.send(orjson.dumps({"type": "auth", "apiKey": key}).decode())
        reply = orjson.loads(await asyncio.wait_for(ws.recv(), 30))
        if reply.get("type") != "auth_ok":
            raise RuntimeError(f"ws auth: {reply}")
        ready.set()
        while not stop.is_set():
            try:
                raw = await asyncio.wait_for(ws.recv(), 0.5)
            except TimeoutError:
                continue
            data = orjson.loads(raw)
            if data.get("type") == "sms_inbound":
                got.append(str(data.get("rcMessageId")))


def _ws_every_node(st: Stack, tenant: Tenant, token: str, sub: str) -> dict[str, Any]:
    body = event_body(sub, EXT1, NUMBER1).replace("__ID__", "44000000001")

    async def go() -> dict[str, Any]:
        stop = asyncio.Event()
        got: dict[int, list[str]] = {n.port: [] for n in st.nodes}
        readies = {n.port: asyncio.Event() for n in st.nodes}
        tasks = [
            asyncio.create_task(
                _ws_listen(n.url.replace("http", "ws") + "/ws", tenant.key, readies[n.port], got[n.port], stop)
            )
            for n in st.nodes
        ]
        await asyncio.wait_for(asyncio.gather(*(e.wait() for e in readies.values())), 30)
        async with httpx.AsyncClient(timeout=30) as http:
            await http.post(
                f"{st.nodes[-1].url}/v1/webhooks/ringcentral",
                content=body,
                headers={"Verification-Token": token, "Content-Type": "application/json"},
            )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not all("44000000001" in g for g in got.values()):
            await asyncio.sleep(0.1)
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        return {"nodes": len(got), "received": sum(1 for g in got.values() if "44000000001" in g)}

    return asyncio.run(go())


def _shared_limit(st: Stack, admin_key: str, limit: int) -> dict[str, Any]:
    codes: dict[int, int] = {}
    with httpx.Client(timeout=30) as http:
        for i in range(int(limit * 1.6)):
            node = st.nodes[i % len(st.nodes)]
            r = http.get(f"{node.url}/v1/tenants", headers={"Authorization": f"Bearer {admin_key}"})
            codes[r.status_code] = codes.get(r.status_code, 0) + 1
    return {"limit": limit, "requests": int(limit * 1.6), "accepted": codes.get(200, 0), "answers": codes}


def _refresh_storm(st: Stack, tenant: Tenant, n: int) -> dict[str, Any]:
    assert st.emulator is not None
    with httpx.Client(timeout=30) as http:
        http.delete(f"{st.emulator.url}/_emulator/requests")
        http.post(f"{st.emulator.url}/_emulator/tokens/expire", json={"extensionId": EXT1})

    async def storm() -> list[str]:
        async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=n)) as http:
            calls = [
                http.post(
                    f"{st.nodes[i % len(st.nodes)].url}/v1/sms/send",
                    headers=tenant.headers,
                    json={"to": "+15558880000", "from": NUMBER1, "body": f"storm {i}"},
                )
                for i in range(n)
            ]
            return [r.json()["messageId"] for r in await asyncio.gather(*calls) if r.status_code == 202]

    ids = set(asyncio.run(storm()))

    def sent() -> bool:
        msgs = list_messages(st.nodes[0], tenant, "outbound")
        return sum(1 for m in msgs if m["messageId"] in ids and m["status"] in TERMINAL) >= len(ids)

    wait_until(sent, 90, 1.0)
    with httpx.Client(timeout=30) as http:
        log = http.get(f"{st.emulator.url}/_emulator/requests", params={"path": "/restapi/oauth/token"}).json()
    refreshes = [r for r in log["requests"] if (r.get("form") or {}).get("grant_type") == "refresh_token"]
    return {"sends": len(ids), "refresh_calls": len(refreshes)}


def r4_node_killed(ctx: SCtx) -> Outcome:
    n = ctx.size(2000, 120)
    limit = 50
    out = Outcome(
        "R4",
        f"3 nodes on PostgreSQL + Redis, one killed during {n:,} sends",
        "each SMS once; events reach WS clients on every node; limits shared; 1 refresh for 100 concurrent",
    )
    _flush_redis(_redis_url())
    st, tenant = _cluster("r4", nodes=3, apps=1, env={"GRAVITY_RATE_LIMIT_ADMIN": str(limit)})
    with st:
        admin_key = st.create_admin(tenant)
        sub, token = st.verification_token(NUMBER1)
        alive = list(st.nodes)
        rr = {"i": 0}

        def base() -> str:
            rr["i"] += 1
            return alive[rr["i"] % len(alive)].url

        sender = Sender(base, tenant.key, n, "r4").start()
        wait_until(lambda: len(sender.accepted) >= n // 3, 300, 0.01)
        victim = st.nodes[1]
        alive.remove(victim)
        victim.proc.kill9()
        st.nodes.remove(victim)
        sender.join()
        ids = set(sender.accepted.values())

        def drained() -> bool:
            msgs = list_messages(st.nodes[0], tenant, "outbound")
            return sum(1 for m in msgs if m["messageId"] in ids and m["status"] in TERMINAL) >= len(ids)

        wait_until(drained, 90 if ctx.quick else 300, 2.0)  # the victim's leases expire after 120 s
        outbound = {m["messageId"]: m for m in list_messages(st.nodes[0], tenant, "outbound")}
        sms = [s for s in emulator_sms(st) if s["text"].startswith("r4 send")]
        ws = _ws_every_node(st, tenant, token, sub)
        shared = _shared_limit(st, admin_key, limit)
        storm = _refresh_storm(st, tenant, ctx.size(100, 30))
        _ = receiver_records(st)
    lost = [i for i in ids if i not in outbound]
    stuck = [i for i in ids if i in outbound and outbound[i]["status"] not in TERMINAL]
    dup = duplicates(s["text"] for s in sms)
    out.figure = (
        f"{len(ids):,} accepted: {dup} duplicate SMS, {len(lost)} lost, {len(stuck)} not terminal; "
        f"WS event on {ws['received']}/{ws['nodes']} surviving nodes; "
        f"admin limit {limit}/min over 2 nodes let {shared['accepted']} through; "
        f"{storm['refresh_calls']} refresh call(s) for {storm['sends']} concurrent sends after expiry"
    )
    out.baseline = f"a per-node limiter would let {min(shared['requests'], limit * 2)} through"
    out.metrics = {"accepted": len(ids), "duplicate_sms": dup, "lost": len(lost), "stuck": len(stuck)}
    out.metrics |= {"ws": ws, "shared_limit": shared, "refresh_storm": storm}
    if ctx.quick:
        out.notes.append(
            "quick run: the drain is shorter than the 120 s lease, so sends held by the victim may be 'not terminal'"
        )
    ok = (
        not dup
        and not lost
        and not stuck
        and ws["received"] == ws["nodes"]
        and shared["accepted"] <= limit
        and storm["refresh_calls"] == 1
    )
    out.verdict = "PASS" if ok else "MISS"
    return out
