"""The whole connect flow over real sockets: the emulator and the gateway each served by uvicorn,
a browser-like client following the redirects, the subscription handshake and an inbound SMS
really crossing HTTP to the gateway's webhook route."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import httpx

from gravity_sms.domain.clock import ManualClock
from gravity_sms.emulator import EmulatorConfig, create_emulator_app
from gravity_sms.runtime import Runtime, build_gateway
from gravity_sms.store import Database
from tests.rc_support import EXT, SMS_NUMBER, actor, free_port, gateway_settings, seed, serve


async def test_connect_flow_end_to_end_over_sockets(database: Database, tmp_path: Path) -> None:
    emu_port, gw_port = free_port(), free_port()
    emu_url, gw_url = f"http://127.0.0.1:{emu_port}", f"http://127.0.0.1:{gw_port}"
    emu_app = create_emulator_app(
        EmulatorConfig(seed=seed(f"{gw_url}/v1/rc/callback"), public_url=emu_url, tick_seconds=None)
    )
    gw = await build_gateway(
        gateway_settings(tmp_path, gw_url, emu_url), clock=ManualClock(datetime.now(UTC)), db=database
    )
    runtime = Runtime(gw, workers=False)
    acme = await actor(gw, "Acme")
    async with (
        serve(emu_app, emu_port),
        serve(runtime.app, gw_port),
        httpx.AsyncClient(timeout=10, follow_redirects=True) as browser,
    ):
        r = await browser.post(f"{gw_url}/v1/rc/connect-token", headers=acme.headers)
        connect_url = gw_url + r.json()["connectUrl"]
        page = await browser.get(connect_url)
        assert page.status_code == 200 and "Connect RingCentral" in page.text
        token = connect_url.split("token=", 1)[1]
        done = await browser.post(f"{gw_url}/v1/rc/connect", data={"token": token})
        # 303 to RingCentral's authorize, 302 back to our callback, and the success page.
        assert [h.status_code for h in done.history] == [303, 302]
        assert str(done.history[0].headers["location"]).startswith(f"{emu_url}/restapi/oauth/authorize?")
        assert done.status_code == 200 and "RingCentral connected" in done.text

        status = (await browser.get(f"{gw_url}/v1/rc/status", headers=acme.headers)).json()
        assert status["connected"] is True and status["extensions"][0]["extensionId"] == EXT
        deliveries = (await browser.get(f"{emu_url}/_emulator/deliveries")).json()["deliveries"]
        assert [(d["kind"], d["status"], d["address"]) for d in deliveries] == [
            ("handshake", 200, f"{gw_url}/v1/webhooks/ringcentral")
        ]

        sent = await browser.post(
            f"{emu_url}/_emulator/inbound", json={"from": "+15551234567", "to": SMS_NUMBER, "text": "over the wire"}
        )
        assert [d["status"] for d in sent.json()["deliveries"]] == [200]
        listed = await browser.get(f"{gw_url}/v1/sms/messages", headers=acme.headers, params={"direction": "inbound"})
        assert [(m["body"], m["rcMessageId"]) for m in listed.json()["messages"]] == [
            ("over the wire", sent.json()["id"])
        ]

        r = await browser.post(f"{gw_url}/v1/rc/disconnect", headers=acme.headers)
        assert r.json() == {"ok": True}
        state = (await browser.get(f"{emu_url}/_emulator/state")).json()
        assert state["subscriptions"] == [] and state["tokens"]["sessions"] == 0
    await runtime.close()
