"""Outbound end to end over real sockets: client → gateway (uvicorn) → worker → RingCentral
emulator (uvicorn) → tracker, with every status change seen on the broker."""

# The fixtures come from tests/delivery/conftest.py (imported below); test arguments name them.
# ruff: noqa: F811

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from gravity_sms.domain.clock import ManualClock
from gravity_sms.runtime import Runtime
from tests.conftest import Actor
from tests.delivery.conftest import connected, emulator, rig  # noqa: F401
from tests.delivery.rig import (  # noqa: F401
    EXT_A,
    NUM_A,
    TO,
    Emulator,
    Pipeline,
    clock,
    connect,
    pipeline,
    recording,
    running_emulator,
    serve,
    settings,
)


@pytest.fixture
async def gateway_url(runtime: Runtime) -> AsyncIterator[str]:
    async with serve(runtime.app) as url:
        yield url


@pytest.fixture
async def http(gateway_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=gateway_url, timeout=10) as c:
        yield c


async def post_send(http: httpx.AsyncClient, actor: Actor, **fields: Any) -> httpx.Response:
    payload = {"to": TO, "from": NUM_A, "body": "Your table is ready", **fields}
    headers = {**actor.headers, **fields.pop("headers", {})} if "headers" in fields else actor.headers
    return await http.post("/v1/sms/send", json=payload, headers=headers)


async def test_send_to_delivered_over_sockets(
    http: httpx.AsyncClient, gateway: Any, emulator: Emulator, rig: Pipeline, connected: Any, clock: ManualClock
) -> None:
    tenant_a, _ = connected
    async with recording(gateway.broker) as events:
        r = await post_send(http, tenant_a)
        assert r.status_code == 202 and r.json()["status"] == "queued"
        message_id = r.json()["messageId"]
        assert (await gateway.store.messages.get(message_id)).status == "queued"
        await rig.worker.run_until_idle()
        [sms] = await emulator.sms()
        assert (sms["from"], sms["to"], sms["text"]) == (NUM_A, TO, "Your table is ready")
        [call] = await emulator.sms_requests()
        assert call["bearer"] is True
        assert call["json"] == {"from": {"phoneNumber": NUM_A}, "to": [{"phoneNumber": TO}], "text": sms["text"]}
        await emulator.advance(5)
        clock.advance(5)
        await rig.tracker.run_until_idle()
        await asyncio.sleep(0)
    message = await gateway.store.messages.get(message_id)
    assert (message.status, message.rc_message_id, message.error) == ("delivered", sms["id"], None)
    assert events.statuses(message_id) == ["sending", "sent", "delivered"]
    assert all(e["tenantId"] == tenant_a.tenant_id and e["appId"] == tenant_a.app_id for e in events.events)


async def test_concurrent_idempotent_repeats_send_one_sms(
    http: httpx.AsyncClient, gateway: Any, emulator: Emulator, rig: Pipeline, connected: Any
) -> None:
    tenant_a, _ = connected
    headers = {**tenant_a.headers, "Idempotency-Key": "appointment-991"}
    body = {"to": TO, "from": NUM_A, "body": "Reminder: 3pm"}
    answers = await asyncio.gather(*(http.post("/v1/sms/send", json=body, headers=headers) for _ in range(20)))
    assert {a.status_code for a in answers} == {202}
    assert len({a.json()["messageId"] for a in answers}) == 1
    await rig.worker.run_until_idle()
    assert [s["text"] for s in await emulator.sms()] == ["Reminder: 3pm"]
    again = await http.post("/v1/sms/send", json=body, headers=headers)
    assert again.json()["messageId"] == answers[0].json()["messageId"]
    await rig.worker.run_until_idle()
    assert len(await emulator.sms()) == 1


async def test_carrier_failure_becomes_failed_with_the_code(
    http: httpx.AsyncClient, gateway: Any, emulator: Emulator, rig: Pipeline, connected: Any, clock: ManualClock
) -> None:
    tenant_a, _ = connected
    await emulator.faults({"deliveryFailure": {"to": TO, "status": "DeliveryFailed", "errorCode": "SMS-CAR-450"}})
    async with recording(gateway.broker) as events:
        message_id = (await post_send(http, tenant_a)).json()["messageId"]
        await rig.worker.run_until_idle()
        await emulator.advance(5)
        clock.advance(5)
        await rig.tracker.run_until_idle()
        await asyncio.sleep(0)
    message = await gateway.store.messages.get(message_id)
    assert (message.status, message.error) == ("failed", "SMS-CAR-450: Delivery failed")
    assert events.statuses(message_id) == ["sending", "sent", "failed"]
    assert events.events[-1]["error"] == "SMS-CAR-450: Delivery failed"


async def test_tracking_backs_off_and_stops_after_24_hours(
    http: httpx.AsyncClient, gateway: Any, connected: Any, clock: ManualClock
) -> None:
    tenant_a, _ = connected
    # A RingCentral where messages stay `Sent` for ever (the carrier never reports).
    async with running_emulator(delivered_after_seconds=10**9) as slow, pipeline(gateway, slow) as p:
        await connect(gateway, slow, tenant_a.tenant_id, EXT_A)
        message_id = (await post_send(http, tenant_a)).json()["messageId"]
        await p.worker.run_until_idle()
        for _ in range(50):  # 25 hours in half-hour steps
            clock.advance(1800)
            await slow.advance(1800)
            await p.tracker.run_until_idle()
        polls = len(await slow.requests("/restapi/v1.0/account/~/extension/~/message-store"))
        assert 10 <= polls <= 50, polls  # backed off, and stopped at 24 h
        message = await gateway.store.messages.get(message_id)
        assert message.status == "sent"
        assert await gateway.outbound_queue.claim_tracking(clock.now(), 60, 10) == []


async def test_wired_workers_send_in_the_background(
    http: httpx.AsyncClient, gateway: Any, emulator: Emulator, connected: Any
) -> None:
    from gravity_sms.runtime import build_workers

    tenant_a, _ = connected
    workers = [w for w in build_workers(gateway) if w.name in ("outbound", "tracker")]
    assert sorted(w.name for w in workers) == ["outbound", "tracker"]
    tasks = [asyncio.create_task(w.run()) for w in workers]
    try:
        message_id = (await post_send(http, tenant_a)).json()["messageId"]
        async with asyncio.timeout(10):  # the API nudges the worker: no polling delay to wait out
            while (await gateway.store.messages.get(message_id)).status != "sent":
                await asyncio.sleep(0.02)
        assert len(await emulator.sms()) == 1
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await gateway.rc.aclose()  # the gateway's own client: the fixture does not close it
