"""A gateway wired to the RingCentral emulator, for the connection tests.

In-process (`Stack`): the gateway's RingCentral client reaches the emulator through an ASGI
transport, and the emulator's handshakes and events reach the gateway's real webhook route the
same way. Over sockets (`serve`): uvicorn on a free loopback port. The gateway's clock is a
ManualClock started at the real time, so it agrees with the emulator's clock (real time plus the
offset its control API advances); tests move both together with `advance()`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import secrets
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import uvicorn

from gravity_sms.domain.clock import ManualClock
from gravity_sms.emulator import EmulatorConfig, create_emulator_app
from gravity_sms.runtime import Runtime, build_gateway
from gravity_sms.settings import Settings
from gravity_sms.store import Database
from tests.conftest import Actor, make_actor

ACCOUNT = "402118231008"
EXT = "402118233008"
EXT2 = "402118234008"
SMS_NUMBER = "+15559876543"
MAIN_NUMBER = "+15559870000"
OTHER_NUMBER = "+15557770001"
CLIENT_ID = "gw-client"
CLIENT_SECRET = "gw-client-secret"


def seed(redirect_uri: str) -> dict[str, Any]:
    return {
        "clients": [{"clientId": CLIENT_ID, "clientSecret": CLIENT_SECRET, "redirectUris": [redirect_uri]}],
        "accounts": [
            {
                "id": ACCOUNT,
                "extensions": [
                    {
                        "id": EXT,
                        "extensionNumber": "101",
                        "name": "Front Desk",
                        "phoneNumbers": [
                            {"phoneNumber": SMS_NUMBER, "features": ["SmsSender", "CallerId"]},
                            {"phoneNumber": MAIN_NUMBER, "features": ["CallerId"], "usageType": "MainCompanyNumber"},
                        ],
                    },
                    {
                        "id": EXT2,
                        "extensionNumber": "102",
                        "name": "Back Office",
                        "phoneNumbers": [{"phoneNumber": OTHER_NUMBER, "features": ["SmsSender"]}],
                    },
                ],
            }
        ],
    }


class LateASGI(httpx.AsyncBaseTransport):
    """An ASGI transport whose app is set after construction (the two apps call each other)."""

    def __init__(self) -> None:
        self.app: Any = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        assert self.app is not None
        return await httpx.ASGITransport(app=self.app).handle_async_request(request)


class Stack:
    def __init__(
        self,
        gw: Any,
        runtime: Runtime,
        emu_app: Any,
        emu: httpx.AsyncClient,
        api: httpx.AsyncClient,
        clock: ManualClock,
    ) -> None:
        self.gw = gw
        self.runtime = runtime
        self.emu_app = emu_app
        self.emu = emu
        self.api = api
        self.clock = clock

    @property
    def emu_state(self) -> Any:
        return self.emu_app.state.emulator

    async def advance(self, seconds: float) -> None:
        """Move the gateway's and the emulator's clocks together."""
        self.clock.advance(seconds)
        r = await self.emu.post("/_emulator/clock/advance", json={"seconds": seconds})
        assert r.status_code == 200, r.text

    async def requests(self, path: str, method: str | None = None) -> list[dict[str, Any]]:
        params = {"path": path} | ({"method": method} if method else {})
        r = await self.emu.get("/_emulator/requests", params=params)
        return list(r.json()["requests"])

    async def start_connect(self, actor: Actor, extension_id: str = EXT, kind: str = "connect-token") -> str:
        """Link token → POST connect → RingCentral authorize; answers the callback URL."""
        r = await self.api.post(f"/v1/rc/{kind}", headers=actor.headers)
        assert r.status_code == 200, r.text
        url = r.json()["connectUrl" if kind == "connect-token" else "inviteUrl"]
        token = parse_qs(urlsplit(url).query)["token"][0]
        r = await self.api.post("/v1/rc/connect", data={"token": token})
        assert r.status_code == 303, r.text
        authorize = urlsplit(r.headers["location"])
        r = await self.emu.post("/_emulator/oauth/next-login", json={"extensionId": extension_id})
        assert r.status_code == 200, r.text
        r = await self.emu.get(f"{authorize.path}?{authorize.query}")
        assert r.status_code == 302, r.text
        return str(r.headers["location"])

    async def connect(self, actor: Actor, extension_id: str = EXT, kind: str = "connect-token") -> None:
        callback = urlsplit(await self.start_connect(actor, extension_id, kind))
        r = await self.api.get(f"{callback.path}?{callback.query}&format=json")
        assert r.status_code == 200 and r.json() == {"ok": True}, r.text


def gateway_settings(tmp_path: Path, public_url: str, rc_server_url: str) -> Settings:
    return Settings(
        env="test",
        data_dir=tmp_path,
        rc_client_id=CLIENT_ID,
        rc_client_secret=CLIENT_SECRET,
        rc_server_url=rc_server_url,
        public_url=public_url,
        _env_file=None,
    )  # type: ignore[call-arg]


@contextlib.asynccontextmanager
async def in_process_stack(database: Database, tmp_path: Path, **emulator: Any) -> AsyncIterator[Stack]:
    """Gateway and emulator in one event loop, each reaching the other through ASGI."""
    clock = ManualClock(datetime.now(UTC))
    to_gateway = LateASGI()
    config = EmulatorConfig(
        seed=seed("http://gateway.test/v1/rc/callback"),
        tick_seconds=None,
        public_url="http://emulator.test",
        webhook_transport=to_gateway,
        **emulator,
    )
    emu_app = create_emulator_app(config)
    settings = gateway_settings(tmp_path, "http://gateway.test", "http://emulator.test")
    rc_http = httpx.AsyncClient(transport=httpx.ASGITransport(app=emu_app))
    gw = await build_gateway(settings, clock=clock, db=database, rc_http=rc_http)
    runtime = Runtime(gw, workers=False)
    to_gateway.app = runtime.app
    async with (
        httpx.AsyncClient(transport=httpx.ASGITransport(app=emu_app), base_url="http://emulator.test") as emu,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=runtime.app, client=("10.1.2.3", 4444)), base_url="http://gateway.test"
        ) as api,
    ):
        try:
            yield Stack(gw, runtime, emu_app, emu, api, clock)
        finally:
            await runtime.app.state.auth.drain()  # lastUsedAt writes run off the request path
            await runtime.close()
            await rc_http.aclose()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@contextlib.asynccontextmanager
async def serve(app: Any, port: int) -> AsyncIterator[str]:
    """uvicorn on 127.0.0.1:port until the block ends; waits (bounded) until it listens."""
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="on", log_level="warning", ws="none")
    )
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(10):
            while not server.started:
                if task.done():
                    task.result()
                await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, timeout=10)


async def actor(gw: Any, name: str = "Acme") -> Actor:
    return await make_actor(gw, name)


def pkce() -> tuple[str, str]:
    """(code_verifier, S256 code_challenge) for a test's own OAuth grant."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


async def emulator_grant(
    emu: httpx.AsyncClient, client_id: str, client_secret: str, redirect_uri: str
) -> dict[str, Any]:
    """A real authorization-code grant (PKCE S256) at the emulator's own OAuth endpoints: the
    token response. Which extension approves is the emulator's choice (`/_emulator/oauth/next-login`)."""
    verifier, challenge = pkce()
    r = await emu.get(
        "/restapi/oauth/authorize",
        params={
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": redirect_uri,
            "state": "s",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        },
    )
    assert r.status_code == 302, r.text
    code = parse_qs(urlsplit(r.headers["location"]).query)["code"][0]
    r = await emu.post(
        "/restapi/oauth/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": verifier,
        },
        auth=(client_id, client_secret),
    )
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body
