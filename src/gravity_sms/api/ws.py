"""`GET /ws`: the real-time event socket (api.md §7).

Owns the connection's protocol: first-message authentication (an API key through the same cache
and brute-force machinery as HTTP, or a single-use `wst_` token), the exact `auth_error` messages
and close 1008, the 10 s auth deadline, then handing the socket to the node's `ConnectionHub`
(which writes events and pings) while this module reads and ignores what the client sends.
Never logs a key or a token.

`FanoutProtocol` is the uvicorn WebSocket protocol the gateway serves with: uvicorn's sans-I/O
`websockets` protocol plus one ASGI scope extension, `gravity.ws.fanout`, whose `write` puts a
frame the hub serialised once per broadcast straight onto the socket, without awaiting and
without the per-frame ASGI/Starlette/`websockets` encoding path (docs/websocket.md has the
figures). Handshake, auth replies, pings from the protocol, inbound frames and every close still
go through ASGI.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import orjson
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.http11 import Request
from websockets.protocol import State

from gravity_sms.api.auth import Authenticator, client_ip
from gravity_sms.api.routes import ws_token
from gravity_sms.api.ws_hub import (
    CLOSE_GOING_AWAY,
    CLOSE_POLICY,
    TENANT_INACTIVE,
    ConnectionHub,
    Subscriber,
    WriteFrame,
)
from gravity_sms.container import Gateway
from gravity_sms.domain.errors import TooManyRequests
from gravity_sms.domain.ids import WS_TOKEN_RE
from gravity_sms.domain.models import AuthContext
from gravity_sms.telemetry import get_logger

CLOSE_INTERNAL = 1011
FANOUT_EXTENSION = "gravity.ws.fanout"

log = get_logger("gravity.ws")


class AuthRefused(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class FanoutProtocol(WebSocketsSansIOProtocol):
    """uvicorn's sans-I/O `websockets` protocol that also offers pre-encoded frame writes.

    The scope of an accepted upgrade carries `extensions["gravity.ws.fanout"] = {"write": fn}`
    where `fn(frame) -> int` writes one complete, unmasked, uncompressed frame (as
    `ws_hub.encode_text_frame` builds it) and returns the bytes the transport still holds for
    this socket, or -1 when the socket is closing or closed (nothing written). Offered only
    when no extension (per-message deflate) was negotiated, since such frames would differ per
    connection. `transport.write` takes whole frames, so these never interleave with the frames
    the protocol itself writes (pong, keepalive ping, close).
    """

    def handle_connect(self, event: Request) -> None:
        super().handle_connect(event)
        scope = getattr(self, "scope", None)  # absent when the handshake was refused
        if scope is not None and not self.conn.extensions:
            scope["extensions"][FANOUT_EXTENSION] = {"write": self.write_frame}

    def write_frame(self, frame: bytes) -> int:
        if self.close_sent or self.disconnected or self.conn.state is not State.OPEN or self.transport.is_closing():
            return -1
        self.transport.write(frame)
        return self.transport.get_write_buffer_size()


def fanout_writer(websocket: WebSocket) -> WriteFrame | None:
    """The connection's direct frame writer, when the server offers one (`FanoutProtocol`)."""
    offered = websocket.scope.get("extensions", {}).get(FANOUT_EXTENSION)
    return offered.get("write") if isinstance(offered, dict) else None


async def _from_token(gw: Gateway, token: object) -> AuthContext:
    if not isinstance(token, str) or not WS_TOKEN_RE.match(token):
        raise AuthRefused("Invalid or expired token")
    value = await gw.tokens.take(gw.box.hash(token))
    if value is None:
        raise AuthRefused("Invalid or expired token")
    tenant = await gw.store.tenants.get(value["tenantId"])
    return AuthContext(
        app_id=value["appId"],
        tenant_id=value["tenantId"],
        role=value["role"],
        key_hash="",
        tenant_status=tenant.status if tenant is not None else "inactive",
    )


async def _from_key(auth: Authenticator, websocket: WebSocket, key: object) -> AuthContext:
    ip = client_ip(websocket, auth.trust_proxy)
    try:
        await auth.check_blocked(ip)
    except TooManyRequests:
        raise AuthRefused("Too many requests") from None
    ctx = await auth.resolve(key) if isinstance(key, str) and key else None
    if ctx is None:
        await auth.record_failure(ip)
        raise AuthRefused("Invalid API key")
    return ctx


async def authenticate(gw: Gateway, auth: Authenticator, websocket: WebSocket, hub: ConnectionHub) -> AuthContext:
    """Read and check the first message; raise AuthRefused with the contract's message."""
    try:
        message = await asyncio.wait_for(websocket.receive(), hub.auth_timeout)
    except TimeoutError:
        raise AuthRefused("Authentication timeout") from None
    if message["type"] == "websocket.disconnect":
        raise ConnectionResetError
    raw: Any = message.get("text")
    if raw is None:
        raw = message.get("bytes") or b""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise AuthRefused("Invalid JSON") from None
    if not isinstance(data, dict) or data.get("type") != "auth":
        raise AuthRefused("Send auth first")
    if "token" in data:
        ctx = await _from_token(gw, data["token"])
    else:
        ctx = await _from_key(auth, websocket, data.get("apiKey"))
    if ctx.tenant_status != "active":
        raise AuthRefused(TENANT_INACTIVE)
    return ctx


async def _send_json(websocket: WebSocket, payload: dict[str, Any]) -> None:
    await websocket.send_text(orjson.dumps(payload).decode())


async def _drain_client(websocket: WebSocket) -> None:
    """Read (and ignore) client messages until the socket closes."""
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return


async def ws_endpoint(websocket: WebSocket) -> None:
    gw: Gateway = websocket.app.state.gateway
    auth: Authenticator = websocket.app.state.auth
    hub = gw.ws_hub
    assert hub is not None, "build_gateway wires the hub"
    await websocket.accept()
    if not hub.accepting:
        await websocket.close(CLOSE_GOING_AWAY, "Server shutting down")
        return
    try:
        ctx = await authenticate(gw, auth, websocket, hub)
    except AuthRefused as refused:
        log.info("ws.auth_failed", reason=refused.message)
        with contextlib.suppress(Exception):
            await _send_json(websocket, {"type": "auth_error", "error": refused.message})
            await websocket.close(CLOSE_POLICY, refused.message)
        return
    except ConnectionResetError:
        return
    except Exception:
        log.exception("ws.auth_crashed")
        with contextlib.suppress(Exception):
            await websocket.close(CLOSE_INTERNAL)
        return

    await hub.ready()
    sub: Subscriber = hub.subscriber(ctx.app_id, ctx.tenant_id, ctx.is_admin, fanout_writer(websocket))
    try:
        await _send_json(websocket, {"type": "auth_ok", "appId": ctx.app_id, "tenantId": ctx.tenant_id})
    except Exception:
        return
    hub.register(sub)
    log.debug("ws.connected", app_id=ctx.app_id, tenant_id=ctx.tenant_id)
    writer = asyncio.create_task(hub.serve(sub, websocket.send_text, websocket.close), name="ws-writer")
    sub.writer = writer
    reader = asyncio.create_task(_drain_client(websocket), name="ws-reader")
    try:
        await asyncio.wait((writer, reader), return_when=asyncio.FIRST_COMPLETED)
    finally:
        hub.unregister(sub)
        for task in (writer, reader):
            task.cancel()
        for task in (writer, reader):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        log.debug("ws.disconnected", app_id=ctx.app_id, tenant_id=ctx.tenant_id)


routes = [WebSocketRoute("/ws", ws_endpoint), *ws_token.routes]
