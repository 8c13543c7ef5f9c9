"""The emulator over real sockets: uvicorn, a real webhook receiver, drops and hangs on the wire."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import uvicorn
from starlette.types import ASGIApp

from gravity_sms.emulator import EmulatorConfig, create_emulator_app, serve_emulator

from .conftest import CLIENT_ID, CLIENT_SECRET, EXT, INSTANT, REDIRECT, SEED, SMS_NUMBER, Receiver, bearer, pkce


@contextlib.asynccontextmanager
async def served(app: ASGIApp) -> AsyncIterator[str]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, lifespan="on", log_level="critical", ws="none", timeout_graceful_shutdown=1)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    for _ in range(500):
        if server.started:
            break
        await asyncio.sleep(0.01)
    assert server.started
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, timeout=5)
        sock.close()


async def _login(client: httpx.AsyncClient) -> dict[str, Any]:
    verifier, challenge = pkce()
    params = {
        "response_type": "code",
        "client_id": CLIENT_ID,
        "redirect_uri": REDIRECT,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    r = await client.get("/restapi/oauth/authorize", params=params)
    code = parse_qs(urlsplit(r.headers["location"]).query)["code"][0]
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT, "code_verifier": verifier}
    r = await client.post("/restapi/oauth/token", data=form, auth=(CLIENT_ID, CLIENT_SECRET))
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def _wait_for(predicate: Any, seconds: float = 3.0) -> None:
    for _ in range(int(seconds / 0.02)):
        if predicate():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not met in time")


async def test_flow_handshake_delivery_drop_and_hang_over_sockets(closed_port: int) -> None:
    receiver = Receiver()
    config = EmulatorConfig(seed=SEED, tick_seconds=0.05)
    async with served(receiver.app) as hook_base, served(create_emulator_app(config)) as base:
        async with httpx.AsyncClient(base_url=base, timeout=5) as client:
            tokens = await _login(client)
            token = tokens["access_token"]
            assert tokens["owner_id"] == EXT

            body = {
                "eventFilters": [INSTANT, "/restapi/v1.0/subscription/~?threshold=600&interval=60"],
                "deliveryMode": {"transportType": "WebHook", "address": f"{hook_base}/hook", "verificationToken": "vt"},
                "expiresIn": 3600,
            }
            created = await client.post("/restapi/v1.0/subscription", json=body, headers=bearer(token))
            assert created.status_code == 200, created.text
            assert len(receiver.handshakes) == 1

            result = (
                await client.post("/_emulator/inbound", json={"from": "+15551234567", "to": SMS_NUMBER, "text": "hi"})
            ).json()
            assert [d["status"] for d in result["deliveries"]] == [200]
            headers, event = receiver.events[0]
            assert headers["verification-token"] == "vt"
            assert event["body"]["subject"] == "hi"

            state = (await client.get("/_emulator/state")).json()
            assert state["subscriptions"][0]["id"] == created.json()["id"]
            assert state["subscriptions"][0]["consecutiveFailures"] == 0

            # A dropped connection is a protocol error for the client.
            await client.post("/_emulator/faults", json={"drop": {"path": "/restapi/v1.0/account/*"}})
            with pytest.raises(httpx.RemoteProtocolError):
                await client.get("/restapi/v1.0/account/~/extension/~", headers=bearer(token))

            # A hang outlasts the client's timeout; the server lets go when the client does.
            await client.post("/_emulator/faults", json={"hang": {"path": "/restapi/v1.0/account/*"}})
            with pytest.raises(httpx.ReadTimeout):
                await client.get("/restapi/v1.0/account/~/extension/~", headers=bearer(token), timeout=0.3)
            assert (await client.get("/restapi/v1.0/account/~/extension/~", headers=bearer(token))).status_code == 200

            dead = {"transportType": "WebHook", "address": f"http://127.0.0.1:{closed_port}/x"}
            refused = await client.post(
                "/restapi/v1.0/subscription", json=dict(body, deliveryMode=dead), headers=bearer(token)
            )
            assert refused.json()["errorCode"] == "SUB-521"


async def test_background_ticker_sends_expiry_reminders() -> None:
    receiver = Receiver()
    config = EmulatorConfig(seed=SEED, tick_seconds=0.05)
    app = create_emulator_app(config)
    async with served(receiver.app) as hook_base, served(app) as base:
        async with httpx.AsyncClient(base_url=base, timeout=5) as client:
            token = (await _login(client))["access_token"]
            body = {
                "eventFilters": ["/restapi/v1.0/subscription/~?threshold=600&interval=60"],
                "deliveryMode": {"transportType": "WebHook", "address": f"{hook_base}/hook"},
                "expiresIn": 3600,
            }
            assert (
                await client.post("/restapi/v1.0/subscription", json=body, headers=bearer(token))
            ).status_code == 200
            app.state.emulator.clock.advance(3100)  # no pending run: only the ticker can notice
            await _wait_for(lambda: len(receiver.events) == 1)
            _, event = receiver.events[0]
            assert event["event"] == "/restapi/v1.0/subscription/~?threshold=600&interval=60"
            assert 0 < event["body"]["expiresIn"] <= 500


async def test_serve_emulator_with_a_seed_file(tmp_path: Path) -> None:
    seed_file = tmp_path / "seed.json"
    seed_file.write_text(json.dumps(SEED))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    task = asyncio.create_task(serve_emulator("127.0.0.1", port, str(seed_file)))
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=2) as client:
            for _ in range(300):
                with contextlib.suppress(httpx.TransportError):
                    state = (await client.get("/_emulator/state")).json()
                    break
                await asyncio.sleep(0.02)
            else:
                raise AssertionError("emulator did not start")
            assert state["accounts"][0]["extensions"][0]["id"] == EXT
            tokens = await _login(client)
            me = await client.get("/restapi/v1.0/account/~/extension/~", headers=bearer(tokens["access_token"]))
            assert me.json()["uri"].startswith(f"http://127.0.0.1:{port}/restapi/v1.0/")
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, timeout=5)
    assert task.done()
