"""`gravity-sms demo` (what `make run` runs): the gateway and the RingCentral emulator in one
process, with a demo tenant connected through the real OAuth flow.

Owns the demo's composition only: the emulator seed (one account, two extensions, numbers with
and without `SmsSender`, a client whose redirect URI is the gateway's callback), a demo tenant
with an admin app and an app (reused on restart: their keys are kept in `<data dir>/demo.json`,
a development convenience — the database itself holds only their hashes), the connect flow over
HTTP, and the banner. Ctrl-C stops both servers cleanly.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import uvicorn

from gravity_sms.emulator import EmulatorConfig, create_emulator_app
from gravity_sms.runtime import Runtime, build_gateway, prepare_database
from gravity_sms.settings import Settings
from gravity_sms.telemetry import configure_logging, get_logger

log = get_logger("gravity.demo")

HOST = "127.0.0.1"
EMULATOR_PORT = 9090
CLIENT_ID = "gravity-demo"
CLIENT_SECRET = "gravity-demo-secret"
ACCOUNT_ID = "400100200300"
FRONT_DESK, BACK_OFFICE = "400100200301", "400100200302"
SMS_NUMBER, VOICE_NUMBER, BACK_OFFICE_NUMBER = "+15559876543", "+15559870000", "+15557770001"
CUSTOMER = "+15551234567"


def demo_seed(callback: str) -> dict[str, Any]:
    return {
        "clients": [{"clientId": CLIENT_ID, "clientSecret": CLIENT_SECRET, "redirectUris": [callback]}],
        "accounts": [
            {
                "id": ACCOUNT_ID,
                "extensions": [
                    {
                        "id": FRONT_DESK,
                        "extensionNumber": "101",
                        "name": "Front Desk",
                        "phoneNumbers": [
                            {"phoneNumber": SMS_NUMBER, "features": ["SmsSender", "CallerId", "MmsSender"]},
                            {"phoneNumber": VOICE_NUMBER, "features": ["CallerId"], "usageType": "MainCompanyNumber"},
                        ],
                    },
                    {
                        "id": BACK_OFFICE,
                        "extensionNumber": "102",
                        "name": "Back Office",
                        "phoneNumbers": [{"phoneNumber": BACK_OFFICE_NUMBER, "features": ["SmsSender"]}],
                    },
                ],
            }
        ],
    }


class _QuietServer(uvicorn.Server):
    """Signals are the demo's to handle (two servers share one process)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@contextlib.asynccontextmanager
async def _serving(app: Any, port: int, name: str) -> AsyncIterator[None]:
    server = _QuietServer(
        uvicorn.Config(app, host=HOST, port=port, lifespan="on", log_level="warning", access_log=False)
    )
    task = asyncio.create_task(server.serve(), name=name)
    try:
        async with asyncio.timeout(15):
            while not server.started:
                if task.done():
                    task.result()
                    raise RuntimeError(f"{name} did not start on {HOST}:{port}")
                await asyncio.sleep(0.02)
        yield
    finally:
        server.should_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, timeout=12)


def _load(path: Path) -> dict[str, str] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _save(path: Path, data: dict[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")
    path.chmod(0o600)


async def _ensure_actors(gw: Any, path: Path) -> dict[str, str]:
    """The demo tenant, admin app and app; reused when the saved keys still work."""
    saved = _load(path)
    if saved is not None:
        try:
            if all(
                [
                    await gw.store.tenants.get(saved["tenantId"]),
                    await gw.store.apps.auth_lookup(gw.box.hash(saved["adminKey"])),
                    await gw.store.apps.auth_lookup(gw.box.hash(saved["appKey"])),
                ]
            ):
                return dict(saved)
        except KeyError:
            pass
    tenant = await gw.tenants.create("Demo Tenant")
    admin = await gw.apps.register(None, {"name": "Demo Admin", "tenantId": tenant.id, "role": "admin"})
    app = await gw.apps.register(None, {"name": "Demo App", "tenantId": tenant.id, "role": "app"})
    saved = {"tenantId": tenant.id, "adminKey": admin["apiKey"], "appKey": app["apiKey"]}
    _save(path, saved)
    return saved


async def connect_over_http(http: httpx.AsyncClient, gateway_url: str, emulator_url: str, key: str) -> None:
    """The real OAuth flow, as a browser does it: link token → POST connect → authorize → callback."""
    auth = {"Authorization": f"Bearer {key}"}
    for kind, extension in (("connect-token", FRONT_DESK), ("invite-token", BACK_OFFICE)):
        r = await http.post(f"{gateway_url}/v1/rc/{kind}", headers=auth)
        r.raise_for_status()
        link = r.json()["connectUrl" if kind == "connect-token" else "inviteUrl"]
        token = parse_qs(urlsplit(link).query)["token"][0]
        (
            await http.post(f"{emulator_url}/_emulator/oauth/next-login", json={"extensionId": extension})
        ).raise_for_status()
        done = await http.post(f"{gateway_url}/v1/rc/connect", data={"token": token}, follow_redirects=True)
        if done.status_code != 200:
            raise RuntimeError(f"connecting extension {extension} failed: HTTP {done.status_code}")


def _banner(gateway_url: str, emulator_url: str, actors: dict[str, str], numbers: list[dict[str, Any]]) -> str:
    sms = [n["phoneNumber"] for n in numbers if n["smsEnabled"]]
    other = [n["phoneNumber"] for n in numbers if not n["smsEnabled"]]
    send = json.dumps({"to": CUSTOMER, "from": sms[0] if sms else SMS_NUMBER, "body": "Hello from Gravity SMS!"})
    inbound = json.dumps(
        {"from": CUSTOMER, "to": sms[0] if sms else SMS_NUMBER, "text": "Hi! Is my appointment still on?"}
    )
    return "\n".join(
        [
            "",
            "Gravity SMS demo is running (Ctrl-C to stop)",
            f"  Gateway:            {gateway_url}   (health: {gateway_url}/health)",
            f"  RingCentral (emu):  {emulator_url}   (state: {emulator_url}/_emulator/state)",
            f"  Tenant:             {actors['tenantId']}  (connected through OAuth)",
            f"  Admin API key:      {actors['adminKey']}",
            f"  App API key:        {actors['appKey']}",
            f"  From-numbers (SMS): {', '.join(sms) or '-'}",
            f"  Not SMS-capable:    {', '.join(other) or '-'}",
            "",
            "Send an SMS through the gateway:",
            f"  curl -s -X POST {gateway_url}/v1/sms/send -H 'Authorization: Bearer {actors['appKey']}' "
            f"-H 'Content-Type: application/json' -d '{send}'",
            "",
            "Inject an inbound SMS at the emulator (it is pushed to the gateway's webhook):",
            f"  curl -s -X POST {emulator_url}/_emulator/inbound -H 'Content-Type: application/json' -d '{inbound}'",
            "",
            f"Then: curl -s {gateway_url}/v1/sms/messages -H 'Authorization: Bearer {actors['appKey']}'",
            "",
        ]
    )


async def run_demo(
    settings: Settings, *, emulator_port: int = EMULATOR_PORT, ready: asyncio.Event | None = None
) -> None:
    configure_logging(settings.log_level, settings.effective_log_format)
    gateway_url = f"http://{HOST}:{settings.port}"
    emulator_url = f"http://{HOST}:{emulator_port}"
    settings = settings.model_copy(
        update={
            "host": HOST,
            "public_url": gateway_url,
            "rc_server_url": emulator_url,
            "rc_client_id": CLIENT_ID,
            "rc_client_secret": CLIENT_SECRET,
        }
    )
    emulator = create_emulator_app(
        EmulatorConfig(seed=demo_seed(f"{gateway_url}/v1/rc/callback"), public_url=emulator_url)
    )
    gw = await build_gateway(settings)
    await prepare_database(gw)
    runtime = Runtime(gw, workers=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    try:
        async with (
            _serving(emulator, emulator_port, "emulator"),
            _serving(runtime.app, settings.port, "gateway"),
            httpx.AsyncClient(timeout=15, trust_env=False) as http,
        ):
            actors = await _ensure_actors(gw, settings.data_dir / "demo.json")
            await connect_over_http(http, gateway_url, emulator_url, actors["appKey"])
            numbers = (
                await http.get(
                    f"{gateway_url}/v1/rc/phone-numbers", headers={"Authorization": f"Bearer {actors['appKey']}"}
                )
            ).json()["phoneNumbers"]
            sys.stdout.write(_banner(gateway_url, emulator_url, actors, numbers) + "\n")
            sys.stdout.flush()
            log.info("demo.ready", gateway=gateway_url, emulator=emulator_url)
            if ready is not None:
                ready.set()
            await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)
        await runtime.close()
        sys.stdout.write("Gravity SMS demo stopped.\n")
