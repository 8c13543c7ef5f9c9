"""Shared pieces for the emulator's tests: a seed, a webhook receiver, an OAuth helper."""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import hashlib
import json
import secrets
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gravity_sms.emulator import EmulatorConfig, create_emulator_app
from gravity_sms.emulator.state import EmulatorState

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "ringcentral"
ACCOUNT = "402118231008"
EXT = "402118233008"
EXT2 = "402118234008"
SMS_NUMBER = "+15559876543"
MAIN_NUMBER = "+15559870000"
OTHER_NUMBER = "+15557770001"
CLIENT_ID = "demo-client"
CLIENT_SECRET = "demo-secret"
REDIRECT = "http://127.0.0.1:8080/v1/rc/callback"
HOOK = "http://receiver.test/hook"
INSTANT = "/restapi/v1.0/account/~/extension/~/message-store/instant?type=SMS"

SEED: dict[str, Any] = {
    "clients": [
        {"clientId": CLIENT_ID, "clientSecret": CLIENT_SECRET, "redirectUris": [REDIRECT]},
        {"clientId": "any-client", "clientSecret": "any-secret", "redirectUris": ["*"]},
    ],
    "accounts": [
        {
            "id": ACCOUNT,
            "extensions": [
                {
                    "id": EXT,
                    "extensionNumber": "101",
                    "name": "Front Desk",
                    "contact": {"firstName": "Front", "lastName": "Desk", "email": "frontdesk@example.com"},
                    "phoneNumbers": [
                        {
                            "phoneNumber": SMS_NUMBER,
                            "features": ["SmsSender", "CallerId", "MmsSender", "InternationalSmsSender"],
                            "location": "Springfield, IL",
                        },
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


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def same_shape(actual: Any, expected: Any, path: str = "$") -> None:
    """Same keys and JSON value types, recursively (lists compared through their first item)."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict), path
        assert set(actual) == set(expected), f"{path}: {sorted(set(actual) ^ set(expected))}"
        for key, value in expected.items():
            same_shape(actual[key], value, f"{path}.{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list), path
        if expected and actual:
            same_shape(actual[0], expected[0], f"{path}[0]")
    else:
        assert type(actual) is type(expected), f"{path}: {type(actual).__name__} != {type(expected).__name__}"


class Receiver:
    """A webhook endpoint whose behaviour a test sets: `mode` and `status`."""

    def __init__(self) -> None:
        self.mode = "ok"
        self.status = 200
        self.handshakes: list[dict[str, str]] = []
        self.events: list[tuple[dict[str, str], Any]] = []
        self.app = Starlette(routes=[Route("/{path:path}", self.handle, methods=["POST"])])

    async def handle(self, request: Request) -> Response:
        headers = dict(request.headers)
        body = await request.body()
        token = request.headers.get("validation-token")
        if token is not None and not body:
            self.handshakes.append(headers)
            if self.mode == "no-echo":
                return Response(status_code=200)
            if self.mode == "large":
                return Response("x" * 2000, headers={"Validation-Token": token})
            if self.mode == "404":
                return Response(status_code=404, headers={"Validation-Token": token})
            return Response(status_code=200, headers={"Validation-Token": token})
        self.events.append((headers, json.loads(body)))
        return Response(status_code=self.status)


def pkce(method: str = "S256") -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    if method == "plain":
        return verifier, verifier
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


class Emu:
    def __init__(self, app: Starlette, client: httpx.AsyncClient) -> None:
        self.app = app
        self.client = client

    @property
    def state(self) -> EmulatorState:
        state = self.app.state.emulator
        assert isinstance(state, EmulatorState)
        return state

    async def authorize(self, method: str = "S256", **params: str) -> tuple[str, str]:
        verifier, challenge = pkce(method)
        query = {
            "response_type": "code",
            "client_id": CLIENT_ID,
            "redirect_uri": REDIRECT,
            "state": "st-1",
            "code_challenge": challenge,
            "code_challenge_method": method,
        } | params
        r = await self.client.get("/restapi/oauth/authorize", params=query)
        assert r.status_code == 302, r.text
        q = parse_qs(urlsplit(r.headers["location"]).query)
        assert q["state"] == ["st-1"]
        return q["code"][0], verifier

    async def token(
        self, form: dict[str, str], auth: tuple[str, str] | None = (CLIENT_ID, CLIENT_SECRET)
    ) -> httpx.Response:
        return await self.client.post("/restapi/oauth/token", data=form, auth=auth)

    async def login(self, **params: str) -> dict[str, Any]:
        code, verifier = await self.authorize(**params)
        r = await self.token(
            {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT, "code_verifier": verifier}
        )
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body

    async def advance(self, seconds: float) -> dict[str, Any]:
        r = await self.client.post("/_emulator/clock/advance", json={"seconds": seconds})
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body

    async def subscribe(self, token: str, **overrides: Any) -> httpx.Response:
        body: dict[str, Any] = {
            "eventFilters": [INSTANT],
            "deliveryMode": {"transportType": "WebHook", "address": HOOK, "verificationToken": "vt-secret"},
            "expiresIn": 604800,
        } | overrides
        return await self.client.post("/restapi/v1.0/subscription", json=body, headers=bearer(token))


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def receiver() -> Receiver:
    return Receiver()


@pytest.fixture
def config(receiver: Receiver) -> EmulatorConfig:
    return EmulatorConfig(seed=SEED, webhook_transport=httpx.ASGITransport(receiver.app), tick_seconds=None)


@contextlib.asynccontextmanager
async def create_emu(config: EmulatorConfig, **overrides: Any) -> AsyncIterator[Emu]:
    app = create_emulator_app(dataclasses.replace(config, **overrides))
    transport = httpx.ASGITransport(app)
    async with httpx.AsyncClient(transport=transport, base_url="http://emulator.test") as client:
        yield Emu(app, client)


@pytest.fixture
async def emu(config: EmulatorConfig) -> AsyncIterator[Emu]:
    async with create_emu(config) as emu:
        yield emu


@pytest.fixture
def closed_port() -> int:
    """A loopback port nobody listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port
