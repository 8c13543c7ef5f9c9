"""A real RingCentral for outbound tests: the emulator served over a loopback socket, tenants
connected with tokens from its real OAuth endpoints, and the worker wired to the real client.

Shared by tests/delivery/ and tests/e2e/test_outbound.py. No mocks: the emulator is the fake.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.types import ASGIApp

from gravity_sms.delivery.sender import OutboundWorker
from gravity_sms.delivery.tracker import DeliveryTracker
from gravity_sms.domain.clock import ManualClock
from gravity_sms.domain.connection_store import NumberInfo, StoredExtension
from gravity_sms.domain.connections import ConnectionService
from gravity_sms.emulator import EmulatorConfig, create_emulator_app
from gravity_sms.ringcentral import RingCentralClient
from gravity_sms.runtime import make_outbound_worker
from gravity_sms.settings import Settings
from tests.rc_support import emulator_grant

CLIENT_ID = "test-client"
CLIENT_SECRET = "test-secret"
ACCOUNT = "700100"
EXT_A = "700101"
EXT_B = "700102"
EXT_C = "700103"
NUM_A = "+15550001001"
NUM_A2 = "+15550001002"
NUM_VOICE = "+15550001009"
NUM_B = "+15550002001"
NUM_C = "+15550003001"
TO = "+15557654321"
SMS_PATH = "/restapi/v1.0/account/~/extension/~/sms"

SEED: dict[str, Any] = {
    "clients": [{"clientId": CLIENT_ID, "clientSecret": CLIENT_SECRET, "redirectUris": ["*"]}],
    "accounts": [
        {
            "id": ACCOUNT,
            "extensions": [
                {
                    "id": EXT_A,
                    "name": "Front Desk",
                    "phoneNumbers": [
                        {"phoneNumber": NUM_A, "features": ["SmsSender", "CallerId"]},
                        {"phoneNumber": NUM_A2, "features": ["SmsSender"]},
                        {"phoneNumber": NUM_VOICE, "features": ["CallerId"]},
                    ],
                },
                {
                    "id": EXT_B,
                    "name": "Back Office",
                    "phoneNumbers": [{"phoneNumber": NUM_B, "features": ["SmsSender"]}],
                },
                {"id": EXT_C, "name": "Sales", "phoneNumbers": [{"phoneNumber": NUM_C, "features": ["SmsSender"]}]},
            ],
        }
    ],
}


def free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@contextlib.asynccontextmanager
async def serve(app: ASGIApp) -> AsyncIterator[str]:
    """Serve an ASGI app with uvicorn on a free loopback port; yields its base URL."""
    sock = free_socket()
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off", ws="none"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    async with asyncio.timeout(10):
        while not server.started:
            await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        server.force_exit = True
        await task
        sock.close()


@dataclass
class Emulator:
    url: str
    app: Any
    control: httpx.AsyncClient

    @property
    def state(self) -> Any:
        return self.app.state.emulator

    async def sms(self) -> list[dict[str, Any]]:
        r = await self.control.get("/_emulator/sms")
        assert r.status_code == 200
        result: list[dict[str, Any]] = r.json()["sms"]
        return result

    async def requests(self, path: str = SMS_PATH) -> list[dict[str, Any]]:
        r = await self.control.get("/_emulator/requests", params={"path": path})
        assert r.status_code == 200
        result: list[dict[str, Any]] = r.json()["requests"]
        return result

    async def sms_requests(self, from_number: str | None = None) -> list[dict[str, Any]]:
        """Requests made to the SMS endpoint (optionally only those from one number)."""
        items = [r for r in await self.requests() if r["method"] == "POST"]
        if from_number is not None:
            items = [r for r in items if r.get("json", {}).get("from", {}).get("phoneNumber") == from_number]
        return items

    async def advance(self, seconds: float) -> None:
        r = await self.control.post("/_emulator/clock/advance", json={"seconds": seconds})
        assert r.status_code == 200, r.text

    async def faults(self, spec: dict[str, Any]) -> None:
        r = await self.control.post("/_emulator/faults", json=spec)
        assert r.status_code == 200, r.text

    async def tokens(self, extension_id: str) -> dict[str, Any]:
        """A real authorization-code grant (PKCE S256) for `extension_id`."""
        r = await self.control.post("/_emulator/oauth/next-login", json={"extensionId": extension_id})
        assert r.status_code == 200, r.text
        return await emulator_grant(self.control, CLIENT_ID, CLIENT_SECRET, "http://gateway.test/v1/rc/callback")


@contextlib.asynccontextmanager
async def running_emulator(**overrides: Any) -> AsyncIterator[Emulator]:
    config = EmulatorConfig(seed=SEED, tick_seconds=None, **overrides)
    app = create_emulator_app(config)
    async with serve(app) as url, httpx.AsyncClient(base_url=url, timeout=10) as control:
        yield Emulator(url, app, control)


async def connect(gw: Any, emu: Emulator, tenant_id: str, extension_id: str) -> None:
    """Store a connected extension the way the OAuth callback would: encrypted real tokens and
    the extension's numbers as the emulator lists them."""
    tokens = await emu.tokens(extension_id)
    now = gw.clock.now()
    ext = StoredExtension(
        tenant_id=tenant_id,
        extension_id=extension_id,
        account_id=ACCOUNT,
        status="connected",
        error=None,
        access_token_enc=gw.box.encrypt(tokens["access_token"]),
        refresh_token_enc=gw.box.encrypt(tokens["refresh_token"]),
        access_expires_at=now + timedelta(seconds=tokens["expires_in"]),
        refresh_expires_at=now + timedelta(seconds=tokens["refresh_token_expires_in"]),
        last_event_at=None,
        created_at=now,
        updated_at=now,
    )
    numbers = []
    for account in SEED["accounts"]:
        for raw in account["extensions"]:
            if raw["id"] == extension_id:
                for n in raw["phoneNumbers"]:
                    features = tuple(n["features"])
                    numbers.append(NumberInfo(n["phoneNumber"], extension_id, features, "SmsSender" in features))
    await gw.store.connections.save_connection(ext, numbers)


@dataclass
class Pipeline:
    """The worker and tracker over a real client to the emulator (short timeouts for tests)."""

    gw: Any
    rc: RingCentralClient
    connections: ConnectionService
    worker: OutboundWorker
    tracker: DeliveryTracker
    extra: list[OutboundWorker] = field(default_factory=list)

    def worker_lease(self) -> timedelta:
        return timedelta(seconds=self.worker.lease_seconds)

    def another_worker(self) -> OutboundWorker:
        worker = make_worker(self.gw, self.connections, self.rc)
        self.extra.append(worker)
        return worker


def make_worker(gw: Any, connections: ConnectionService, rc: RingCentralClient, **kwargs: Any) -> OutboundWorker:
    return make_outbound_worker(gw, connections, rc, **kwargs)


@contextlib.asynccontextmanager
async def pipeline(gw: Any, emu: Emulator, *, timeout: float = 2.0) -> AsyncIterator[Pipeline]:
    rc = RingCentralClient(emu.url, CLIENT_ID, CLIENT_SECRET, timeout=timeout, clock=gw.clock)
    connections = ConnectionService(
        gw.store.connections, rc, gw.locks, gw.box, gw.clock, gw.limiter, public_url="http://gateway.test"
    )
    worker = make_worker(gw, connections, rc)
    tracker = DeliveryTracker(queue=gw.outbound_queue, connections=connections, rc=rc, broker=gw.broker, clock=gw.clock)
    try:
        yield Pipeline(gw, rc, connections, worker, tracker)
    finally:
        await rc.aclose()


class EventLog:
    """Everything published on the `gravity.events` channel while the test runs."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def statuses(self, message_id: str) -> list[str]:
        return [e["status"] for e in self.events if e.get("messageId") == message_id]


@contextlib.asynccontextmanager
async def recording(broker: Any) -> AsyncIterator[EventLog]:
    log = EventLog()
    async with broker.subscribe("gravity.events") as events:

        async def pump() -> None:
            async for event in events:
                log.events.append(event)

        task = asyncio.create_task(pump())
        try:
            yield log
        finally:
            await asyncio.sleep(0)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


# --- fixtures that outbound test modules import (they override the shared ones by name) ---
@pytest.fixture
def clock() -> ManualClock:
    # The emulator keeps wall time: start the gateway's manual clock there so message-store
    # date filters and token expiries agree; from then on only the test moves it.
    return ManualClock(datetime.now(UTC))


@pytest.fixture
def settings(tmp_path: Path, emulator: Emulator) -> Settings:
    return Settings(
        env="test",
        data_dir=tmp_path,
        rc_server_url=emulator.url,
        rc_client_id="test-client",
        rc_client_secret="test-secret",
        public_url="http://gateway.test",
        _env_file=None,
    )  # type: ignore[call-arg]
