"""WebSocket protocol (api.md §7) over a real socket: uvicorn on a free port with the production
server settings, and the `websockets` client library.

Events are published through the gateway's broker exactly as the inbound and outbound pipelines
publish them (channel `gravity.events`, the wire payloads).
"""

from __future__ import annotations

import asyncio
import itertools
import re
import socket
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.protocol import State
from websockets.server import ServerProtocol

from gravity_sms.api.ws_hub import encode_text_frame
from gravity_sms.domain.clock import ManualClock
from gravity_sms.runtime import GatewayServer, Runtime, uvicorn_config
from gravity_sms.settings import Settings
from tests.broker.redis_server import free_port
from tests.conftest import Actor, make_actor

WAIT = 5.0
CHANNEL = "gravity.events"


@pytest.fixture
def db_backend() -> str:
    """The socket protocol does not depend on the database: SQLite only (the store suite covers both)."""
    return "sqlite"


class Live:
    def __init__(self, url: str, server: GatewayServer, gw: Any) -> None:
        self.url = url
        self.server = server
        self.gw = gw


@pytest.fixture
async def live(request: pytest.FixtureRequest, runtime: Runtime, settings: Settings) -> AsyncIterator[Live]:
    """The production server; `indirect` param "queued": plain uvicorn sans-I/O protocol, so the hub
    falls back to its writer-task queue (no direct frame writes offered)."""
    port = free_port()
    config = uvicorn_config(runtime.app, settings.model_copy(update={"port": port}))
    if getattr(request, "param", "direct") == "queued":
        config.ws = "websockets-sansio"
    server = GatewayServer(config, runtime)
    task = asyncio.create_task(server.serve())
    for _ in range(500):
        if server.started:
            break
        await asyncio.sleep(0.01)
    assert server.started
    yield Live(f"ws://127.0.0.1:{port}/ws", server, runtime.gw)
    server.should_exit = True
    await asyncio.wait_for(task, 15)


async def open_ws(url: str, **kwargs: Any) -> ClientConnection:
    return await connect(url, proxy=None, open_timeout=WAIT, **kwargs)


async def recv_json(ws: ClientConnection) -> dict[str, Any]:
    data: dict[str, Any] = orjson.loads(await asyncio.wait_for(ws.recv(), WAIT))
    return data


async def authed(live: Live, **first: Any) -> ClientConnection:
    ws = await open_ws(live.url)
    await ws.send(orjson.dumps({"type": "auth", **first}).decode())
    reply = await recv_json(ws)
    assert reply["type"] == "auth_ok", reply
    return ws


async def next_event(ws: ClientConnection) -> dict[str, Any]:
    """The next message that is not a ping."""
    while True:
        msg = await recv_json(ws)
        if msg["type"] != "ping":
            return msg


async def expect_refused(live: Live, first: str | None, error: str) -> None:
    ws = await open_ws(live.url)
    if first is not None:
        await ws.send(first)
    assert await recv_json(ws) == {"type": "auth_error", "error": error}
    await asyncio.wait_for(ws.wait_closed(), WAIT)
    assert ws.close_code == 1008
    assert ws.close_reason == error


def inbound(tenant_id: str, n: int = 1, body: str = "Hey") -> dict[str, Any]:
    return {
        "type": "sms_inbound",
        "messageId": f"msg_{n:012x}",
        "from": "+15551234567",
        "to": "+15559876543",
        "body": body,
        "rcMessageId": str(n),
        "tenantId": tenant_id,
        "timestamp": "2026-03-01T14:30:00.000Z",
    }


def status(actor: Actor, n: int = 1, state: str = "sent") -> dict[str, Any]:
    return {
        "type": "sms_status",
        "messageId": f"msg_{n:012x}",
        "appId": actor.app_id,
        "tenantId": actor.tenant_id,
        "status": state,
        "rcMessageId": str(n),
        "timestamp": "2026-03-01T14:30:00.000Z",
    }


# --- token route -------------------------------------------------------------------------------
async def test_ws_token_route(client: httpx.AsyncClient, tenant_a: Actor) -> None:
    r = await client.post("/v1/ws/token", headers=tenant_a.headers)
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {"token", "expiresIn"} and body["expiresIn"] == 60
    assert re.fullmatch(r"wst_[0-9a-f]{64}", body["token"])
    assert r.headers["X-RateLimit-Limit"] == "100"
    r = await client.post("/v1/ws/token")
    assert (r.status_code, r.json()) == (401, {"error": "Missing or invalid API key"})


# --- authentication ----------------------------------------------------------------------------
async def test_api_key_auth(live: Live, tenant_a: Actor) -> None:
    ws = await open_ws(live.url)
    await ws.send(orjson.dumps({"type": "auth", "apiKey": tenant_a.key}).decode())
    assert await recv_json(ws) == {"type": "auth_ok", "appId": tenant_a.app_id, "tenantId": tenant_a.tenant_id}
    await ws.close()


async def test_token_auth_is_single_use_and_expires(
    live: Live, client: httpx.AsyncClient, tenant_a: Actor, clock: ManualClock
) -> None:
    token = (await client.post("/v1/ws/token", headers=tenant_a.headers)).json()["token"]
    ws = await open_ws(live.url)
    await ws.send(orjson.dumps({"type": "auth", "token": token}).decode())
    assert await recv_json(ws) == {"type": "auth_ok", "appId": tenant_a.app_id, "tenantId": tenant_a.tenant_id}
    await ws.close()
    await expect_refused(live, orjson.dumps({"type": "auth", "token": token}).decode(), "Invalid or expired token")

    stale = (await client.post("/v1/ws/token", headers=tenant_a.headers)).json()["token"]
    clock.advance(61)
    await expect_refused(live, orjson.dumps({"type": "auth", "token": stale}).decode(), "Invalid or expired token")
    await expect_refused(live, '{"type": "auth", "token": "wst_nope"}', "Invalid or expired token")


@pytest.mark.parametrize(
    ("first", "error"),
    [
        ("not json{", "Invalid JSON"),
        ("", "Invalid JSON"),
        ('{"type": "pong"}', "Send auth first"),
        ('["auth"]', "Send auth first"),
        ('{"type": "auth", "apiKey": "sgw_00000000000000000000000000000000"}', "Invalid API key"),
        ('{"type": "auth", "apiKey": 42}', "Invalid API key"),
        ('{"type": "auth"}', "Invalid API key"),
    ],
)
async def test_auth_errors(live: Live, tenant_a: Actor, first: str, error: str) -> None:
    await expect_refused(live, first, error)


async def test_authentication_timeout(live: Live) -> None:
    live.gw.ws_hub.auth_timeout = 0.2
    await expect_refused(live, None, "Authentication timeout")


async def test_suspended_tenant_is_refused_on_both_paths(
    live: Live, client: httpx.AsyncClient, tenant_a: Actor
) -> None:
    token = (await client.post("/v1/ws/token", headers=tenant_a.headers)).json()["token"]
    await live.gw.tenants.update(tenant_a.tenant_id, {"status": "suspended"})
    await expect_refused(
        live, orjson.dumps({"type": "auth", "apiKey": tenant_a.key}).decode(), "Tenant suspended or inactive"
    )
    await expect_refused(live, orjson.dumps({"type": "auth", "token": token}).decode(), "Tenant suspended or inactive")


async def test_failed_key_auths_block_the_address_like_http(live: Live, tenant_a: Actor) -> None:
    bad = '{"type": "auth", "apiKey": "sgw_00000000000000000000000000000000"}'
    for _ in range(10):
        await expect_refused(live, bad, "Invalid API key")
    good = orjson.dumps({"type": "auth", "apiKey": tenant_a.key}).decode()
    await expect_refused(live, good, "Too many requests")


async def test_a_connection_is_closed_when_its_tenant_is_suspended(
    live: Live, tenant_a: Actor, tenant_b: Actor
) -> None:
    ws_a = await authed(live, apiKey=tenant_a.key)
    ws_b = await authed(live, apiKey=tenant_b.key)
    await live.gw.tenants.update(tenant_a.tenant_id, {"status": "suspended"})
    await live.gw.ws_hub.ping_round()
    assert await recv_json(ws_a) == {"type": "ping"}
    await asyncio.wait_for(ws_a.wait_closed(), WAIT)
    assert (ws_a.close_code, ws_a.close_reason) == (1008, "Tenant suspended or inactive")
    assert await recv_json(ws_b) == {"type": "ping"}
    await live.gw.broker.publish(CHANNEL, inbound(tenant_b.tenant_id))
    assert (await next_event(ws_b))["tenantId"] == tenant_b.tenant_id
    await ws_b.close()


# --- scoping -----------------------------------------------------------------------------------
@pytest.mark.parametrize("live", ["direct", "queued"], indirect=True)
async def test_events_are_scoped_to_tenant_app_and_admin(
    live: Live, tenant_a: Actor, tenant_b: Actor, admin: Actor
) -> None:
    a2 = await make_actor(live.gw, "Tenant A second app", tenant_id=tenant_a.tenant_id)
    ws_a = await authed(live, apiKey=tenant_a.key)
    ws_a2 = await authed(live, apiKey=a2.key)
    ws_b = await authed(live, apiKey=tenant_b.key)
    ws_admin = await authed(live, apiKey=admin.key)
    publish = live.gw.broker.publish

    await publish(CHANNEL, status(tenant_a, 1))  # A's app only (and admins)
    await publish(CHANNEL, status(tenant_b, 2))  # B's app only (and admins)
    await publish(CHANNEL, inbound(tenant_a.tenant_id, 3))  # every connection of tenant A
    await publish(CHANNEL, inbound(tenant_b.tenant_id, 4))

    assert await next_event(ws_a) == status(tenant_a, 1)
    assert await next_event(ws_a) == inbound(tenant_a.tenant_id, 3)
    assert await next_event(ws_a2) == inbound(tenant_a.tenant_id, 3)  # not A's other app's status
    assert await next_event(ws_b) == status(tenant_b, 2)
    assert await next_event(ws_b) == inbound(tenant_b.tenant_id, 4)
    assert [await next_event(ws_admin) for _ in range(4)] == [
        status(tenant_a, 1),
        status(tenant_b, 2),
        inbound(tenant_a.tenant_id, 3),
        inbound(tenant_b.tenant_id, 4),
    ]
    # Nothing else was queued for anyone: a final marker is the very next message everywhere.
    marker = inbound(tenant_a.tenant_id, 99)
    await publish(CHANNEL, {**marker, "tenantId": tenant_b.tenant_id})
    await publish(CHANNEL, marker)
    assert await next_event(ws_a) == marker
    assert await next_event(ws_a2) == marker
    assert (await next_event(ws_b))["messageId"] == marker["messageId"]
    for ws in (ws_a, ws_a2, ws_b, ws_admin):
        await ws.close()


async def test_client_messages_after_auth_are_ignored(live: Live, tenant_a: Actor) -> None:
    ws = await authed(live, apiKey=tenant_a.key)
    await ws.send('{"type": "pong"}')
    await ws.send("garbage")
    await ws.send(b"\x00\x01")
    await live.gw.broker.publish(CHANNEL, inbound(tenant_a.tenant_id))
    assert await next_event(ws) == inbound(tenant_a.tenant_id)
    await ws.close()


async def test_connection_gauge(live: Live, tenant_a: Actor) -> None:
    gauge = live.gw.metrics.ws_connections
    ws1 = await authed(live, apiKey=tenant_a.key)
    ws2 = await authed(live, apiKey=tenant_a.key)
    assert gauge._value.get() == 2
    await ws1.close()
    await ws2.close()
    for _ in range(200):
        if gauge._value.get() == 0:
            break
        await asyncio.sleep(0.01)
    assert gauge._value.get() == 0


# --- ping, backpressure, shutdown --------------------------------------------------------------
async def test_ping_cadence(live: Live, tenant_a: Actor) -> None:
    live.gw.ws_hub.ping_interval = 0.2
    ws = await authed(live, apiKey=tenant_a.key)
    loop = asyncio.get_running_loop()
    stamps = []
    for _ in range(3):
        assert await recv_json(ws) == {"type": "ping"}
        stamps.append(loop.time())
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    assert all(0.1 <= gap <= 1.0 for gap in gaps), gaps
    await ws.close()


async def test_default_ping_interval_is_30s(live: Live) -> None:
    assert live.gw.ws_hub.ping_interval == 30.0
    assert live.gw.ws_hub.auth_timeout == 10.0


@pytest.mark.parametrize("live", ["direct", "queued"], indirect=True)
async def test_slow_reader_is_closed_1013_while_a_fast_reader_keeps_receiving(live: Live, tenant_a: Actor) -> None:
    live.gw.ws_hub.buffer_bytes = 64 * 1024  # direct writes: 8 frames of 8 KB beyond what the kernel took
    live.gw.ws_hub.buffer = 8  # queued: 8 frames
    port = int(live.url.split(":")[2].split("/")[0])
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.setblocking(False)
    slow = await connect(live.url, proxy=None, sock=sock, max_queue=1, open_timeout=WAIT)
    await slow.send(orjson.dumps({"type": "auth", "apiKey": tenant_a.key}).decode())
    assert (await recv_json(slow))["type"] == "auth_ok"
    fast = await authed(live, apiKey=tenant_a.key)

    total = 1000
    body = "x" * 8000  # enough to fill the kernel buffers a loopback socket can grow
    received = 0

    async def read_fast() -> None:
        nonlocal received
        while received < total:
            event = await next_event(fast)
            assert event["messageId"] == f"msg_{received:012x}"
            received += 1

    reader = asyncio.create_task(read_fast())
    for n in range(total):
        await live.gw.broker.publish(CHANNEL, inbound(tenant_a.tenant_id, n, body))
        while n - received > 4:  # a stream the fast client keeps up with
            await asyncio.sleep(0.001)
    await asyncio.wait_for(reader, WAIT * 2)
    assert received == total

    # The slow client finally reads: what had reached its socket, then the 1013 close.
    got = 0
    with pytest.raises(ConnectionClosed):
        while True:
            await asyncio.wait_for(slow.recv(), WAIT)
            got += 1
    assert slow.close_code == 1013
    assert got < total
    await fast.close()


async def test_graceful_shutdown_closes_with_1001(live: Live, tenant_a: Actor) -> None:
    ws = await authed(live, apiKey=tenant_a.key)
    live.server.should_exit = True
    await asyncio.wait_for(ws.wait_closed(), WAIT)
    assert ws.close_code == 1001


# --- direct frame writes -----------------------------------------------------------------------
@pytest.mark.parametrize("size", [0, 100, 126, 70_000])  # the 7-bit, 16-bit and 64-bit length forms
def test_frames_encoded_once_are_what_the_protocol_would_send(size: int) -> None:
    text = '{"type":"sms_inbound","body":"' + "é" * (size // 2) + '"}'
    conn = ServerProtocol(state=State.OPEN)
    conn.send_text(text.encode())
    assert encode_text_frame(text) == b"".join(conn.data_to_send())


@pytest.mark.parametrize("live", ["direct", "queued"], indirect=True)
async def test_the_production_server_offers_direct_writes(
    live: Live, tenant_a: Actor, request: pytest.FixtureRequest
) -> None:
    ws1 = await authed(live, apiKey=tenant_a.key)
    ws2 = await authed(live, apiKey=tenant_a.key)
    direct = request.node.callspec.params["live"] == "direct"
    subs = list(live.gw.ws_hub._all)
    assert len(subs) == 2
    assert all((sub.write is not None) is direct for sub in subs)
    big = inbound(tenant_a.tenant_id, 7, "é" * 40_000)  # a frame with a 64-bit length
    await live.gw.broker.publish(CHANNEL, inbound(tenant_a.tenant_id, 6))
    await live.gw.broker.publish(CHANNEL, big)
    for ws in (ws1, ws2):
        assert await next_event(ws) == inbound(tenant_a.tenant_id, 6)
        assert await next_event(ws) == big
    await ws1.close()
    # A socket that closed is skipped (not an overflow) while the other keeps receiving.
    for _ in range(200):
        if live.gw.ws_hub.connections == 1:
            break
        await asyncio.sleep(0.01)
    await live.gw.broker.publish(CHANNEL, inbound(tenant_a.tenant_id, 8))
    assert await next_event(ws2) == inbound(tenant_a.tenant_id, 8)
    await ws2.close()


async def test_a_write_after_the_peer_vanished_reports_a_closed_socket(live: Live, tenant_a: Actor) -> None:
    ws = await authed(live, apiKey=tenant_a.key)
    (sub,) = live.gw.ws_hub._all
    assert sub.write is not None
    ws.transport.abort()  # no close frame: the server learns of it from the socket
    for _ in range(200):
        if sub.write(encode_text_frame("{}")) == -1:
            break
        await asyncio.sleep(0.01)
    assert sub.write(encode_text_frame("{}")) == -1


async def test_a_large_fan_out_yields_to_the_loop_between_slices(live: Live, tenant_a: Actor) -> None:
    hub = live.gw.ws_hub
    hub.slice_size = 2
    trace: list[str] = []

    def writer(name: str) -> Callable[[bytes], int]:
        def write(frame: bytes) -> int:
            assert frame == encode_text_frame(orjson.dumps(inbound(tenant_a.tenant_id)).decode())
            trace.append(name)
            return 0

        return write

    subs = [hub.subscriber(tenant_a.app_id, tenant_a.tenant_id, False, writer(f"socket {i}")) for i in range(5)]
    for sub in subs:
        hub.register(sub)

    async def other_work() -> None:
        trace.append("other")

    try:
        fan_out = asyncio.create_task(hub.dispatch(inbound(tenant_a.tenant_id)))
        other = asyncio.create_task(other_work())
        assert await fan_out == 5
        await other
    finally:
        for sub in subs:
            hub.unregister(sub)
    assert len(trace) == 6
    assert trace.index("other") == 2  # after the first slice, not after all five sockets
