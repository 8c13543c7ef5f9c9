"""The outbound worker against the RingCentral emulator over a real socket (api.md §5 points 2-7)."""

# `clock` and `settings` come from tests/delivery/rig.py (imported below); test arguments name them.
# ruff: noqa: F811

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from gravity_sms.domain.clock import ManualClock
from gravity_sms.domain.connection_store import NumberInfo
from gravity_sms.domain.outbound import split_body, utf16_units
from gravity_sms.store.tables import messages
from tests.conftest import Actor, make_actor
from tests.delivery.rig import (  # noqa: F401
    EXT_A,
    NUM_A,
    NUM_A2,
    NUM_B,
    NUM_VOICE,
    SMS_PATH,
    TO,
    Emulator,
    Pipeline,
    clock,
    recording,
    settings,
)


async def send(client: httpx.AsyncClient, actor: Actor, body: str = "Hello there", **fields: Any) -> str:
    payload = {"to": TO, "from": NUM_A, "body": body, **fields}
    r = await client.post("/v1/sms/send", json=payload, headers=actor.headers)
    assert r.status_code == 202, r.text
    message_id: str = r.json()["messageId"]
    return message_id


async def status(gw: Any, message_id: str) -> Any:
    message = await gw.store.messages.get(message_id)
    assert message is not None
    return message


async def test_send_reaches_ringcentral_then_sent_then_delivered(
    client: httpx.AsyncClient, gateway: Any, emulator: Emulator, rig: Pipeline, connected: Any, clock: ManualClock
) -> None:
    tenant_a, _ = connected
    async with recording(gateway.broker) as events:
        message_id = await send(client, tenant_a, userId="u-7")
        await rig.worker.run_until_idle()
        sent = await status(gateway, message_id)
        assert sent.status == "sent" and sent.error is None
        sms = await emulator.sms()
        assert [(s["from"], s["to"], s["text"], s["extensionId"]) for s in sms] == [(NUM_A, TO, "Hello there", EXT_A)]
        assert sent.rc_message_id == sms[0]["id"]
        calls = await emulator.sms_requests()
        assert len(calls) == 1 and calls[0]["bearer"] is True and calls[0]["authorization"] == "Bearer"

        # RingCentral moves it to Delivered after 2 s of its clock; the tracker polls from +5 s.
        await emulator.advance(3)
        await rig.tracker.run_until_idle()
        assert (await status(gateway, message_id)).status == "sent", "polled before it was due"
        clock.advance(5)
        await rig.tracker.run_until_idle()
        delivered = await status(gateway, message_id)
        assert delivered.status == "delivered"
        assert delivered.rc_message_id == sms[0]["id"]
        await asyncio.sleep(0)
    assert events.statuses(message_id) == ["sending", "sent", "delivered"]
    sent_event = next(e for e in events.events if e["status"] == "sent")
    assert sent_event == {
        "type": "sms_status",
        "messageId": message_id,
        "appId": tenant_a.app_id,
        "tenantId": tenant_a.tenant_id,
        "status": "sent",
        "rcMessageId": sms[0]["id"],
        "timestamp": sent_event["timestamp"],
    }
    assert sent_event["timestamp"].endswith("Z")


@pytest.mark.parametrize("from_number", [NUM_VOICE, "+15550009876", NUM_B])
async def test_number_not_owned_or_without_sms_sender_fails(
    client: httpx.AsyncClient, gateway: Any, emulator: Emulator, rig: Pipeline, connected: Any, from_number: str
) -> None:
    tenant_a, _ = connected  # NUM_B belongs to tenant_b: not this tenant's number
    async with recording(gateway.broker) as events:
        message_id = await send(client, tenant_a, **{"from": from_number})
        await rig.worker.run_until_idle()
        await asyncio.sleep(0)
    failed = await status(gateway, message_id)
    assert failed.status == "failed"
    assert failed.error == f"Phone number {from_number} is not registered in this RingCentral account"
    assert await emulator.sms_requests() == []
    assert events.statuses(message_id) == ["failed"]
    assert events.events[-1]["error"] == failed.error


async def test_tenant_without_connection_fails(
    client: httpx.AsyncClient, gateway: Any, emulator: Emulator, rig: Pipeline, connected: Any
) -> None:
    lonely = await make_actor(gateway, "Lonely")
    message_id = await send(client, lonely)
    await rig.worker.run_until_idle()
    failed = await status(gateway, message_id)
    assert (failed.status, failed.error) == ("failed", "RingCentral not connected for this tenant")
    assert await emulator.sms_requests() == []


@pytest.mark.parametrize("tenant_status", ["suspended", "inactive"])
async def test_suspended_tenant_queue_fails(
    client: httpx.AsyncClient, gateway: Any, emulator: Emulator, rig: Pipeline, connected: Any, tenant_status: str
) -> None:
    tenant_a, _ = connected
    message_id = await send(client, tenant_a)
    await gateway.tenants.update(tenant_a.tenant_id, {"status": tenant_status})
    await rig.worker.run_until_idle()
    failed = await status(gateway, message_id)
    assert (failed.status, failed.error) == ("failed", "Tenant suspended or inactive")
    assert await emulator.sms_requests() == []


async def test_permanent_ringcentral_error_fails_at_once(
    client: httpx.AsyncClient, gateway: Any, emulator: Emulator, rig: Pipeline, connected: Any
) -> None:
    tenant_a, _ = connected
    # The gateway's cache says the extension owns this number; RingCentral disagrees (MSG-245).
    stale = "+15550001777"
    await gateway.store.connections.save_connection(
        await gateway.store.connections.get_extension(tenant_a.tenant_id, EXT_A),
        [NumberInfo(n, EXT_A, ("SmsSender",), True) for n in (NUM_A, NUM_A2, stale)],
    )
    message_id = await send(client, tenant_a, **{"from": stale})
    await rig.worker.run_until_idle()
    failed = await status(gateway, message_id)
    assert failed.status == "failed"
    assert failed.error.startswith("MSG-245: Parameter [from] value [+15550001777] is invalid")
    assert len(await emulator.sms_requests()) == 1, "a permanent error is not retried"


async def test_two_503s_then_success(
    client: httpx.AsyncClient, gateway: Any, emulator: Emulator, rig: Pipeline, connected: Any, clock: ManualClock
) -> None:
    tenant_a, _ = connected
    await emulator.faults({"serverError": {"path": SMS_PATH, "count": 2, "status": 503}})
    async with recording(gateway.broker) as events:
        message_id = await send(client, tenant_a)
        await rig.worker.run_until_idle()
        assert (await status(gateway, message_id)).status == "sending"
        clock.advance(1.5)
        await rig.worker.run_until_idle()
        assert len(await emulator.sms_requests()) == 1, "retried before its backoff"
        clock.advance(1.0)  # 2 s ± 20 %
        await rig.worker.run_until_idle()
        assert len(await emulator.sms_requests()) == 2
        clock.advance(10.0)  # 8 s ± 20 %
        await rig.worker.run_until_idle()
        await asyncio.sleep(0)
    assert (await status(gateway, message_id)).status == "sent"
    assert len(await emulator.sms_requests()) == 3
    assert len(await emulator.sms()) == 1
    assert events.statuses(message_id) == ["sending", "sent"]


async def test_transient_errors_exhaust_six_attempts(
    client: httpx.AsyncClient, gateway: Any, emulator: Emulator, rig: Pipeline, connected: Any, clock: ManualClock
) -> None:
    tenant_a, _ = connected
    await emulator.faults({"serverError": {"path": SMS_PATH, "count": 100, "status": 500}})
    message_id = await send(client, tenant_a)
    for _ in range(10):
        await rig.worker.run_until_idle()
        clock.advance(400)
    failed = await status(gateway, message_id)
    assert failed.status == "failed"
    assert failed.error == "CMN-201: Internal Server Error"
    assert len(await emulator.sms_requests()) == 6


async def test_429_pauses_only_that_extension(
    client: httpx.AsyncClient, gateway: Any, emulator: Emulator, rig: Pipeline, connected: Any, clock: ManualClock
) -> None:
    tenant_a, tenant_b = connected
    await emulator.faults({"rateLimit": {"path": SMS_PATH, "count": 1, "retryAfter": 40}})
    first = await send(client, tenant_a)
    await rig.worker.run_until_idle()
    assert len(await emulator.sms_requests()) == 1  # the 429
    same_extension = await send(client, tenant_a, **{"from": NUM_A2})
    other_extension = await send(client, tenant_b, **{"from": NUM_B})
    await rig.worker.run_until_idle()
    assert (await status(gateway, other_extension)).status == "sent"
    clock.advance(39)
    await rig.worker.run_until_idle()
    ext_a_calls = [r for r in await emulator.sms_requests() if r["json"]["from"]["phoneNumber"] in (NUM_A, NUM_A2)]
    assert len(ext_a_calls) == 1, "a request reached the paused extension inside Retry-After"
    assert (await status(gateway, first)).status == "sending"
    assert (await status(gateway, same_extension)).status == "queued"
    clock.advance(2)
    await rig.worker.run_until_idle()
    assert (await status(gateway, first)).status == "sent"
    assert (await status(gateway, same_extension)).status == "sent"
    assert len(await emulator.sms()) == 3


async def test_per_number_limit_holds_messages_in_queued(
    client: httpx.AsyncClient, gateway: Any, emulator: Emulator, rig: Pipeline, connected: Any, clock: ManualClock
) -> None:
    tenant_a, _ = connected
    ids = [await send(client, tenant_a, body=f"n{i}") for i in range(45)]
    await rig.worker.run_until_idle()
    assert len(await emulator.sms()) == 40
    states = [(await status(gateway, i)).status for i in ids]
    assert states.count("sent") == 40 and states.count("queued") == 5
    for _ in range(5):  # re-checked every 5 s inside the window, never failed
        clock.advance(5)
        await rig.worker.run_until_idle()
        assert len(await emulator.sms()) == 40
    clock.advance(36)
    await emulator.advance(61)
    await rig.worker.run_until_idle()
    assert [(await status(gateway, i)).status for i in ids] == ["sent"] * 45
    assert len(await emulator.sms()) == 45
    assert [r["status"] for r in await emulator.sms_requests()] == [200] * 45, "drew a 429"


async def test_other_numbers_are_not_held_by_a_full_number(
    client: httpx.AsyncClient, gateway: Any, emulator: Emulator, rig: Pipeline, connected: Any
) -> None:
    tenant_a, tenant_b = connected
    for i in range(42):
        await send(client, tenant_a, body=f"a{i}")
    b = await send(client, tenant_b, **{"from": NUM_B})
    await rig.worker.run_once()
    assert (await status(gateway, b)).status == "sent", "tenant B waited behind tenant A's backlog"


@pytest.mark.parametrize(
    "body",
    [
        " ".join(["word"] * 300)[:1500],
        "😀" * 1600,
        ("a😀 " * 400)[:1600],
        "x" * 1600,
    ],
)
async def test_long_bodies_go_in_parts(
    client: httpx.AsyncClient, gateway: Any, emulator: Emulator, rig: Pipeline, connected: Any, body: str
) -> None:
    tenant_a, _ = connected
    message_id = await send(client, tenant_a, body=body)
    await rig.worker.run_until_idle()
    sent = await status(gateway, message_id)
    assert sent.status == "sent"
    texts = [s["text"] for s in await emulator.sms()]
    assert texts == split_body(body)
    assert len(texts) > 1
    assert "".join(texts) == body
    assert all(utf16_units(t) <= 1000 for t in texts)
    assert sent.rc_message_id == (await emulator.sms())[0]["id"]


async def test_expired_access_token_is_refreshed_once(
    client: httpx.AsyncClient, gateway: Any, emulator: Emulator, rig: Pipeline, connected: Any
) -> None:
    tenant_a, _ = connected
    r = await emulator.control.post("/_emulator/tokens/expire", json={"extensionId": EXT_A})
    assert r.status_code == 200
    message_id = await send(client, tenant_a)
    await rig.worker.run_until_idle()
    assert (await status(gateway, message_id)).status == "sent"
    assert len(await emulator.requests("/restapi/oauth/token")) == 3  # two logins + one refresh
    assert len(await emulator.sms()) == 1


async def test_lease_expired_after_accepted_send_is_adopted_not_resent(
    client: httpx.AsyncClient, gateway: Any, emulator: Emulator, rig: Pipeline, connected: Any, clock: ManualClock
) -> None:
    tenant_a, _ = connected
    message_id = await send(client, tenant_a, body="only once please")
    # A worker claims it, marks it sending, RingCentral accepts the SMS — and the worker dies.
    queue = gateway.outbound_queue
    now = clock.now()
    [_claimed] = await queue.claim("dead-worker", now, 120, 10, 10, 10)
    assert await queue.start_attempt(message_id, "dead-worker", now, now + rig.worker_lease(), EXT_A)
    accepted = await rig.connections.call(
        tenant_a.tenant_id,
        EXT_A,
        lambda token: rig.rc.send_sms(token, from_number=NUM_A, to_number=TO, text="only once please"),
    )
    await rig.worker.run_until_idle()
    assert (await status(gateway, message_id)).status == "sending", "taken while the lease was live"
    clock.advance(121)
    async with recording(gateway.broker) as events:
        await rig.another_worker().run_until_idle()
        await asyncio.sleep(0)
    done = await status(gateway, message_id)
    assert (done.status, done.rc_message_id) == ("sent", accepted.message.id)
    assert len(await emulator.sms()) == 1, "the person was texted twice"
    assert events.statuses(message_id) == ["sent"]


async def test_lease_expired_before_send_is_sent_once(
    client: httpx.AsyncClient, gateway: Any, emulator: Emulator, rig: Pipeline, connected: Any, clock: ManualClock
) -> None:
    tenant_a, _ = connected
    message_id = await send(client, tenant_a)
    now = clock.now()
    await gateway.outbound_queue.claim("dead-worker", now, 120, 10, 10, 10)
    assert await gateway.outbound_queue.start_attempt(message_id, "dead-worker", now, now + rig.worker_lease(), EXT_A)
    clock.advance(121)
    await rig.worker.run_until_idle()
    assert (await status(gateway, message_id)).status == "sent"
    assert len(await emulator.sms()) == 1
    assert len(await emulator.requests("/restapi/v1.0/account/~/extension/~/message-store")) == 1  # looked first


async def test_second_part_resumes_without_resending_the_first(
    client: httpx.AsyncClient, gateway: Any, emulator: Emulator, rig: Pipeline, connected: Any, clock: ManualClock
) -> None:
    tenant_a, _ = connected
    body = "x" * 1500
    first, second = split_body(body)
    message_id = await send(client, tenant_a, body=body)
    now = clock.now()
    queue = gateway.outbound_queue
    await queue.claim("dead-worker", now, 120, 10, 10, 10)
    await queue.start_attempt(message_id, "dead-worker", now, now + rig.worker_lease(), EXT_A)
    accepted = await rig.connections.call(
        tenant_a.tenant_id, EXT_A, lambda token: rig.rc.send_sms(token, from_number=NUM_A, to_number=TO, text=first)
    )
    await queue.part_accepted(message_id, "dead-worker", 1, accepted.message.id, now)
    clock.advance(121)
    await rig.worker.run_until_idle()
    done = await status(gateway, message_id)
    assert (done.status, done.rc_message_id) == ("sent", accepted.message.id)
    assert [s["text"] for s in await emulator.sms()] == [first, second]


async def test_graceful_stop_releases_leases(
    client: httpx.AsyncClient, gateway: Any, emulator: Emulator, rig: Pipeline, connected: Any, clock: ManualClock
) -> None:
    tenant_a, _ = connected
    message_id = await send(client, tenant_a)
    # The message is claimed by a worker that is then stopped before it could send.
    await gateway.outbound_queue.claim(rig.worker.owner, clock.now(), 120, 10, 10, 10)
    task = asyncio.create_task(rig.worker.run())
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await rig.another_worker().run_until_idle()  # no clock advance: the lease was given back
    assert (await status(gateway, message_id)).status == "sent"


@pytest.mark.parametrize(
    "fault",
    [
        {"hang": {"path": SMS_PATH, "count": 1, "seconds": 30}},
        {"drop": {"path": SMS_PATH, "count": 2}},
        {"serverError": {"path": SMS_PATH, "count": 1, "status": 502}},
    ],
    ids=["hang", "drop", "502"],
)
async def test_ambiguous_failures_never_duplicate(
    client: httpx.AsyncClient,
    gateway: Any,
    emulator: Emulator,
    rig: Pipeline,
    connected: Any,
    clock: ManualClock,
    fault: dict[str, Any],
) -> None:
    tenant_a, _ = connected
    await emulator.faults(fault)
    message_id = await send(client, tenant_a)
    for _ in range(4):
        await rig.worker.run_until_idle()
        clock.advance(10)
    assert (await status(gateway, message_id)).status == "sent"
    assert len(await emulator.sms()) == 1


async def test_fault_storm_leaves_nothing_stuck(
    client: httpx.AsyncClient, gateway: Any, emulator: Emulator, rig: Pipeline, connected: Any, clock: ManualClock
) -> None:
    tenant_a, tenant_b = connected
    await emulator.faults(
        {
            "seed": 7,
            "serverError": {"path": SMS_PATH, "probability": 0.2},
            "rateLimit": {"path": SMS_PATH, "probability": 0.1, "retryAfter": 20},
            "drop": {"path": SMS_PATH, "probability": 0.05},
        }
    )
    ids = [await send(client, tenant_a, body=f"a{i}", **{"from": NUM_A if i % 2 else NUM_A2}) for i in range(12)]
    ids += [await send(client, tenant_b, body=f"b{i}", **{"from": NUM_B}) for i in range(12)]
    for _ in range(40):
        await rig.worker.run_until_idle()
        clock.advance(30)
        await emulator.advance(30)
    states = {(await status(gateway, i)).status for i in ids}
    assert states <= {"sent", "failed"}, states
    texts = [s["text"] for s in await emulator.sms()]
    assert len(texts) == len(set(texts)), "a message was texted twice"
    sent = [i for i in ids if (await status(gateway, i)).status == "sent"]
    assert len(sent) == len(texts)


async def test_rows_in_another_status_are_never_moved_back(
    client: httpx.AsyncClient, gateway: Any, emulator: Emulator, rig: Pipeline, connected: Any
) -> None:
    tenant_a, _ = connected
    message_id = await send(client, tenant_a)
    async with gateway.db.write() as conn:
        await conn.execute(update(messages).where(messages.c.id == message_id).values(status="delivered"))
    queue = gateway.outbound_queue
    now = gateway.clock.now()
    assert not await queue.mark_failed(message_id, "x", now)
    assert not await queue.mark_delivery_failed(message_id, "x", now)
    assert await queue.claim("w", now, 60, 10, 10, 10) == []
    assert (await status(gateway, message_id)).status == "delivered"


async def test_timeout_after_ringcentral_accepted_is_adopted(
    client: httpx.AsyncClient, gateway: Any, emulator: Emulator, rig: Pipeline, connected: Any, clock: ManualClock
) -> None:
    tenant_a, _ = connected
    # RingCentral answers only after the client's 2 s timeout, but does create the SMS.
    await emulator.faults({"latency": {"path": SMS_PATH, "seconds": 3}})
    message_id = await send(client, tenant_a)
    await rig.worker.run_until_idle()
    assert (await status(gateway, message_id)).status == "sending"
    async with asyncio.timeout(10):
        while not await emulator.sms():
            await asyncio.sleep(0.1)
    r = await emulator.control.delete("/_emulator/faults")
    assert r.status_code == 200
    clock.advance(3)
    await rig.worker.run_until_idle()
    done = await status(gateway, message_id)
    sms = await emulator.sms()
    assert len(sms) == 1, "re-sent although RingCentral had accepted it"
    assert (done.status, done.rc_message_id) == ("sent", sms[0]["id"])


async def test_two_workers_send_each_message_exactly_once(
    client: httpx.AsyncClient, gateway: Any, emulator: Emulator, rig: Pipeline, connected: Any
) -> None:
    tenant_a, tenant_b = connected
    ids = [await send(client, tenant_a, body=f"a{i}", **{"from": NUM_A if i % 2 else NUM_A2}) for i in range(24)]
    ids += [await send(client, tenant_b, body=f"b{i}", **{"from": NUM_B}) for i in range(12)]
    other = rig.another_worker()
    rig.worker.batch_size = other.batch_size = 4
    await asyncio.gather(rig.worker.run_until_idle(), other.run_until_idle())
    texts = sorted(s["text"] for s in await emulator.sms())
    assert texts == sorted([f"a{i}" for i in range(24)] + [f"b{i}" for i in range(12)])
    assert {(await status(gateway, i)).status for i in ids} == {"sent"}
