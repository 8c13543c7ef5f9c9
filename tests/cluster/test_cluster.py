"""Cross-node guarantees of cluster mode (operations.md §4, quality.md R4), on real processes.

Tests run in file order against one module-scoped cluster (two `gravity-sms serve` nodes); the
last test kills a node.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect

from tests.cluster.conftest import Cluster
from tests.rc_support import SMS_NUMBER

pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]

WAIT = 10.0


def bearer(actor: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {actor['apiKey']}"}


async def ws_auth(url: str, **first: Any) -> ClientConnection:
    ws = await connect(url, proxy=None, open_timeout=WAIT)
    await ws.send(orjson.dumps({"type": "auth", **first}).decode())
    reply = orjson.loads(await asyncio.wait_for(ws.recv(), WAIT))
    assert reply["type"] == "auth_ok", reply
    return ws


async def next_event(ws: ClientConnection) -> dict[str, Any]:
    while True:
        msg: dict[str, Any] = orjson.loads(await asyncio.wait_for(ws.recv(), WAIT))
        if msg["type"] != "ping":
            return msg


async def test_a_wst_token_from_node_a_works_on_node_b_once(cluster: Cluster) -> None:
    a, b = cluster.nodes
    async with httpx.AsyncClient(timeout=WAIT) as http:
        r = await http.post(f"{a.url}/v1/ws/token", headers=bearer(cluster.actors["a"]))
        assert r.status_code == 200, r.text
        token = r.json()["token"]
    ws = await ws_auth(b.ws_url, token=token)
    await ws.close()
    again = await connect(a.ws_url, proxy=None, open_timeout=WAIT)
    await again.send(orjson.dumps({"type": "auth", "token": token}).decode())
    assert orjson.loads(await asyncio.wait_for(again.recv(), WAIT)) == {
        "type": "auth_error",
        "error": "Invalid or expired token",
    }
    await asyncio.wait_for(again.wait_closed(), WAIT)
    assert again.close_code == 1008


async def test_rate_limit_is_shared_across_nodes(cluster: Cluster) -> None:
    a, b = cluster.nodes
    headers = bearer(cluster.actors["b"])
    async with httpx.AsyncClient(timeout=WAIT) as http:
        statuses = []
        for n in range(100):
            node = a if n % 2 else b
            statuses.append((await http.get(f"{node.url}/v1/apps", headers=headers)).status_code)
        assert statuses == [200] * 100
        for node in (a, b):
            r = await http.get(f"{node.url}/v1/apps", headers=headers)
            assert (r.status_code, r.json()) == (429, {"error": "Too many requests"})
            assert int(r.headers["Retry-After"]) >= 1


async def test_a_rotated_key_is_refused_at_once_on_every_node(cluster: Cluster) -> None:
    a, b = cluster.nodes
    admin = bearer(cluster.actors["admin"])
    async with httpx.AsyncClient(timeout=WAIT) as http:
        # A throw-away app whose key both nodes have cached.
        r = await http.post(
            f"{a.url}/v1/apps/register",
            headers=admin,
            json={"name": "rotating", "tenantId": cluster.actors["a"]["tenantId"]},
        )
        assert r.status_code == 201, r.text
        app = r.json()
        for node in (a, b):
            assert (await http.get(f"{node.url}/v1/apps", headers=bearer(app))).status_code == 200
        r = await http.post(f"{a.url}/v1/apps/{app['appId']}/rotate-key", headers=admin)
        assert r.status_code == 200
        new_key = r.json()["apiKey"]
        for node in (b, a):
            r = await http.get(f"{node.url}/v1/apps", headers=bearer(app))
            assert (r.status_code, r.json()) == (401, {"error": "Invalid API key"})
            assert (
                await http.get(f"{node.url}/v1/apps", headers={"Authorization": f"Bearer {new_key}"})
            ).status_code == 200
        # Deleting works the same way.
        await http.delete(f"{b.url}/v1/apps/{app['appId']}", headers=admin)
        for node in (a, b):
            r = await http.get(f"{node.url}/v1/apps", headers={"Authorization": f"Bearer {new_key}"})
            assert r.status_code == 401


async def _connect_tenant_a(cluster: Cluster, http: httpx.AsyncClient) -> None:
    a = cluster.nodes[0]
    r = await http.post(f"{a.url}/v1/rc/connect-token", headers=bearer(cluster.actors["a"]))
    assert r.status_code == 200, r.text
    token = r.json()["connectUrl"].split("token=", 1)[1]
    done = await http.post(f"{a.url}/v1/rc/connect", data={"token": token}, follow_redirects=True)
    assert done.status_code == 200, done.text
    status = (await http.get(f"{a.url}/v1/rc/status", headers=bearer(cluster.actors["a"]))).json()
    assert status["connected"] is True


async def test_an_inbound_sms_posted_to_node_a_reaches_websockets_on_node_b(cluster: Cluster) -> None:
    a, b = cluster.nodes
    async with httpx.AsyncClient(timeout=WAIT) as http:
        await _connect_tenant_a(cluster, http)
        tenant_ws = await ws_auth(b.ws_url, apiKey=cluster.actors["a"]["apiKey"])
        admin_ws = await ws_auth(a.ws_url, apiKey=cluster.actors["admin"]["apiKey"])
        other_ws = await ws_auth(b.ws_url, apiKey=cluster.actors["b"]["apiKey"])
        sent = await http.post(
            f"{cluster.emulator_url}/_emulator/inbound",
            json={"from": "+15551234567", "to": SMS_NUMBER, "text": "across the cluster"},
        )
        assert [d["status"] for d in sent.json()["deliveries"]] == [200]  # delivered to node A
    for ws in (tenant_ws, admin_ws):
        event = await next_event(ws)
        assert (event["type"], event["body"], event["tenantId"]) == (
            "sms_inbound",
            "across the cluster",
            cluster.actors["a"]["tenantId"],
        )
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(other_ws.recv(), 0.5)
    for ws in (tenant_ws, admin_ws, other_ws):
        await ws.close()


async def _statuses(cluster: Cluster, ids: list[str]) -> dict[str, str]:
    import asyncpg

    conn = await asyncpg.connect(cluster.database_url)
    try:
        rows = await conn.fetch("SELECT id, status FROM messages WHERE id = ANY($1::text[])", ids)
    finally:
        await conn.close()
    return {r["id"]: r["status"] for r in rows}


async def _wait_settled(
    cluster: Cluster, ids: list[str], *, allow_sending: bool = False, within: float = 30.0
) -> dict[str, str]:
    """Poll PostgreSQL (the source of truth; no API quota spent) until every message is final —
    or, with `allow_sending`, final or held by a dead node's lease (claimed while `queued`, or
    `sending`) and stable."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    previous: set[str] = set()
    while True:
        statuses = await _statuses(cluster, ids)
        pending = {i for i, st in statuses.items() if st not in ("sent", "delivered", "failed")}
        done = len(statuses) == len(ids) and (
            not pending
            or (allow_sending and pending == previous and all(statuses[i] in ("queued", "sending") for i in pending))
        )
        if done:
            return statuses
        assert loop.time() < deadline, f"not settled: {[(i, statuses[i]) for i in sorted(pending)][:5]}"
        previous = pending
        await asyncio.sleep(1.0 if allow_sending else 0.2)


async def test_token_refresh_storm_makes_one_refresh_and_sends_are_exactly_once(cluster: Cluster) -> None:
    """100 sends across both nodes right after RingCentral expired the access token: every worker
    that hits the 401 asks for a refresh; the cluster lock lets exactly one reach RingCentral."""
    a, b = cluster.nodes
    headers = bearer(cluster.actors["admin"])
    app_headers = bearer(cluster.actors["a"])
    async with httpx.AsyncClient(timeout=WAIT) as http:
        status = (await http.get(f"{a.url}/v1/rc/status", headers=app_headers)).json()
        if not status.get("connected"):
            await _connect_tenant_a(cluster, http)
        # A fresh app: its 100 requests a minute are exactly the 100 sends below.
        r = await http.post(
            f"{a.url}/v1/apps/register",
            headers=headers,
            json={"name": "storm", "tenantId": cluster.actors["a"]["tenantId"]},
        )
        app_headers = bearer(r.json())
        await http.delete(f"{cluster.emulator_url}/_emulator/requests")
        r = await http.post(f"{cluster.emulator_url}/_emulator/tokens/expire", json={})
        assert r.status_code == 200
        before = len((await http.get(f"{cluster.emulator_url}/_emulator/sms")).json()["sms"])

        async def send(n: int) -> str:
            node = a if n % 2 else b
            r = await http.post(
                f"{node.url}/v1/sms/send",
                headers=app_headers,
                json={"from": SMS_NUMBER, "to": "+15551230000", "body": f"storm {n}"},
            )
            assert r.status_code == 202, r.text
            return str(r.json()["messageId"])

        ids = await asyncio.gather(*(send(n) for n in range(100)))
        final = await _wait_settled(cluster, ids)
        assert set(final.values()) <= {"sent", "delivered"}, final
        sms = (await http.get(f"{cluster.emulator_url}/_emulator/sms")).json()["sms"][before:]
        texts = sorted(m["text"] for m in sms)
        assert texts == sorted(f"storm {n}" for n in range(100))  # each exactly once
        token_calls = (
            await http.get(f"{cluster.emulator_url}/_emulator/requests", params={"path": "/restapi/oauth/token"})
        ).json()["requests"]
        refreshes = [c for c in token_calls if "refresh_token" in orjson.dumps(c).decode()]
        assert len(refreshes) == 1, refreshes


async def _explain(cluster: Cluster, ids: list[str]) -> str:
    """The rows of unexpected outcomes (with their error and attempts) and the nodes' log tails."""
    import asyncpg

    conn = await asyncpg.connect(cluster.database_url)
    try:
        rows = await conn.fetch(
            "SELECT id, status, error, attempts, parts_sent, rc_message_id, lease_owner, claimed_at, created_at,"
            " updated_at FROM messages WHERE id = ANY($1::text[]) ORDER BY created_at",
            ids,
        )
    finally:
        await conn.close()
    logs = [f"--- {node.name}.log ---\n{node.log.read_text()[-4000:]}" for node in cluster.nodes]
    return "\n".join([*(str(dict(r)) for r in rows), *logs])


async def test_killing_a_node_mid_load_loses_nothing(cluster: Cluster) -> None:
    a, b = cluster.nodes
    headers = bearer(cluster.actors["admin"])
    async with httpx.AsyncClient(timeout=WAIT) as http:
        # Runnable on its own (`-k killing`): without a connection every message would fail.
        status = (await http.get(f"{a.url}/v1/rc/status", headers=bearer(cluster.actors["a"]))).json()
        if not status.get("connected"):
            await _connect_tenant_a(cluster, http)
        before = len((await http.get(f"{cluster.emulator_url}/_emulator/sms")).json()["sms"])
        accepted: list[str] = []
        for n in range(40):
            node = b if n % 2 else a
            try:
                r = await http.post(
                    f"{node.url}/v1/sms/send",
                    headers=headers,
                    json={"from": SMS_NUMBER, "to": "+15551239999", "body": f"kill {n}"},
                )
            except httpx.TransportError:
                continue  # the dead node: a load balancer would route around it; nothing was accepted
            if r.status_code == 202:
                accepted.append(r.json()["messageId"])
            if n == 20:
                b.kill()  # SIGKILL: no drain, leases left behind
        assert len(accepted) >= 25
        # Every accepted message is durably stored and either sent, or still held under the dead
        # node's lease (claimed while `queued`, or `sending`); the survivor takes those over when
        # the lease expires, after checking RingCentral's message store — the outbound suite
        # covers that takeover with a manual clock (tests/delivery/test_sender.py and
        # test_sender_crash.py). A `failed` one shows its row and the nodes' logs.
        final = await _wait_settled(cluster, accepted, allow_sending=True)
        unexpected = {i for i, st in final.items() if st not in ("sent", "delivered", "sending", "queued")}
        assert not unexpected, await _explain(cluster, sorted(unexpected))
        sms = (await http.get(f"{cluster.emulator_url}/_emulator/sms")).json()["sms"][before:]
        texts = [m["text"] for m in sms]
        assert len(texts) == len(set(texts))  # nothing sent twice
        sent = [i for i, st in final.items() if st in ("sent", "delivered")]
        assert len(texts) >= len(sent)
        assert len(final) == len(accepted)  # nothing accepted was lost
