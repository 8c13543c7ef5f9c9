"""A worker killed during a message's attempt (api.md §5 point 7, quality.md R4), and answers that
leave it unknown whether RingCentral accepted a text. The survivor's message-store lookup is not a
send attempt, so a transient failure of that lookup never turns a text RingCentral already accepted
into `failed`; an attempt cut short by a crash before its request reached RingCentral does not use
up one of the 6; an unreadable 200 is looked up and adopted, never failed. Manual clock, the
emulator over a socket."""

# `clock` and `settings` come from tests/delivery/rig.py (imported below); test arguments name them.
# ruff: noqa: F811

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import update

from gravity_sms.domain.clock import ManualClock
from gravity_sms.domain.outbound import MAX_ATTEMPTS
from gravity_sms.store.tables import messages
from tests.delivery.rig import (  # noqa: F401
    EXT_A,
    NUM_A,
    SMS_PATH,
    TO,
    Emulator,
    Pipeline,
    clock,
    recording,
    settings,
)
from tests.delivery.test_sender import send, status

STORE_PATH = "/restapi/v1.0/account/~/extension/~/message-store"


async def _last_attempt_accepted_then_killed(
    client: httpx.AsyncClient, gateway: Any, rig: Pipeline, tenant: Any, clock: ManualClock, body: str
) -> tuple[str, str]:
    """A message on its last attempt (five transient failures behind it): a worker claims it,
    RingCentral accepts the SMS, and the worker is killed before it records the answer."""
    message_id = await send(client, tenant, body=body)
    async with gateway.db.write() as conn:
        await conn.execute(update(messages).where(messages.c.id == message_id).values(attempts=MAX_ATTEMPTS - 1))
    queue = gateway.outbound_queue
    now = clock.now()
    [_claimed] = await queue.claim("killed-node", now, 120, 10, 10, 10)
    assert await queue.start_attempt(message_id, "killed-node", now, now + rig.worker_lease(), EXT_A)
    accepted = await rig.connections.call(
        tenant.tenant_id, EXT_A, lambda token: rig.rc.send_sms(token, from_number=NUM_A, to_number=TO, text=body)
    )
    return message_id, accepted.message.id


async def test_a_failed_lookup_after_a_crash_on_the_last_attempt_does_not_fail_a_sent_text(
    client: httpx.AsyncClient, gateway: Any, emulator: Emulator, rig: Pipeline, connected: Any, clock: ManualClock
) -> None:
    tenant_a, _ = connected
    message_id, rc_id = await _last_attempt_accepted_then_killed(
        client, gateway, rig, tenant_a, clock, "sixth time lucky"
    )
    # The survivor takes the lease over; its message-store lookup meets one 503.
    await emulator.faults({"serverError": {"path": STORE_PATH, "count": 1, "status": 503}})
    clock.advance(121)
    async with recording(gateway.broker) as events:
        await rig.worker.run_until_idle()
        row = await status(gateway, message_id)
        assert (row.status, row.error) == ("sending", None), "a lookup failure ended a message RingCentral accepted"
        # Looked up again after the backoff (about 5 min at this point): found and adopted.
        clock.advance(400)
        await rig.worker.run_until_idle()
    done = await status(gateway, message_id)
    assert (done.status, done.rc_message_id, done.error) == ("sent", rc_id, None)
    assert len(await emulator.sms()) == 1, "re-sent although RingCentral had accepted it"
    assert len(await emulator.sms_requests()) == 1
    assert events.statuses(message_id) == ["sent"]


async def test_a_message_store_that_stays_unreachable_fails_the_message_after_a_day(
    client: httpx.AsyncClient, gateway: Any, emulator: Emulator, rig: Pipeline, connected: Any, clock: ManualClock
) -> None:
    tenant_a, _ = connected
    message_id, _ = await _last_attempt_accepted_then_killed(client, gateway, rig, tenant_a, clock, "in the dark")
    await emulator.faults({"serverError": {"path": STORE_PATH, "count": 1000, "status": 503}})
    clock.advance(121)
    await rig.worker.run_until_idle()
    assert (await status(gateway, message_id)).status == "sending"
    clock.advance(timedelta(hours=24).total_seconds())
    await rig.worker.run_until_idle()
    failed = await status(gateway, message_id)
    assert (failed.status, failed.error) == ("failed", "CMN-211: Service Temporary Unavailable")
    assert len(await emulator.sms_requests()) == 1, "never re-sent while it could not tell whether it went"


async def test_lookups_thin_out_while_ringcentral_is_down(
    client: httpx.AsyncClient, gateway: Any, emulator: Emulator, rig: Pipeline, connected: Any, clock: ManualClock
) -> None:
    """A 10-minute outage that starts with a first attempt answered 503 (in doubt): the lookups
    before a re-send back off with the time the answer has been in doubt instead of coming back
    every ~2 s (a lookup is no attempt, so the attempt count cannot slow them down)."""
    tenant_a, _ = connected
    await emulator.faults(
        {
            "serverError": [
                {"path": SMS_PATH, "count": 1, "status": 503},
                {"path": STORE_PATH, "count": 100_000, "status": 503},
            ]
        }
    )
    message_id = await send(client, tenant_a, body="patience")
    for _ in range(300):  # the worker's loop, every 2 s, for 10 minutes
        await rig.worker.run_until_idle()
        clock.advance(2)
    lookups = len(await emulator.requests(STORE_PATH))
    assert 3 <= lookups <= 15, f"{lookups} message-store lookups in 10 minutes"
    assert len(await emulator.sms_requests()) == 1  # never re-sent while in doubt
    assert (await status(gateway, message_id)).status == "sending"
    assert (await emulator.control.delete("/_emulator/faults")).status_code == 200  # RingCentral is back
    clock.advance(301)  # the longest lookup delay
    await rig.worker.run_until_idle()  # looked up: RingCentral never had it, so it is sent now
    assert (await status(gateway, message_id)).status == "sent"
    assert len(await emulator.sms()) == 1 and len(await emulator.sms_requests()) == 2


async def _killed_before_the_request(
    gateway: Any, rig: Pipeline, clock: ManualClock, message_id: str, failed_before: int
) -> None:
    """`failed_before` transient failures behind it, a worker claims the message and starts its
    next attempt, and is killed before the request leaves the node."""
    async with gateway.db.write() as conn:
        await conn.execute(update(messages).where(messages.c.id == message_id).values(attempts=failed_before))
    queue = gateway.outbound_queue
    now = clock.now()
    [_claimed] = await queue.claim("killed-node", now, 120, 10, 10, 10)
    assert await queue.start_attempt(message_id, "killed-node", now, now + rig.worker_lease(), EXT_A)


async def test_an_attempt_cut_short_by_a_crash_does_not_use_up_the_budget(
    client: httpx.AsyncClient, gateway: Any, emulator: Emulator, rig: Pipeline, connected: Any, clock: ManualClock
) -> None:
    tenant_a, _ = connected
    message_id = await send(client, tenant_a, body="fifth time")
    # Four failed attempts; the fifth is cut short by a crash before RingCentral saw it.
    await _killed_before_the_request(gateway, rig, clock, message_id, MAX_ATTEMPTS - 2)
    await emulator.faults({"serverError": {"path": SMS_PATH, "count": 1, "status": 503}})
    clock.advance(121)
    async with recording(gateway.broker) as events:
        # The survivor looks it up (not there), re-does the fifth attempt and meets a 503:
        # one attempt is left.
        await rig.worker.run_until_idle()
        row = await status(gateway, message_id)
        assert (row.status, row.error) == ("sending", None), "the attempt cut short was counted"
        clock.advance(400)
        await rig.worker.run_until_idle()
    done = await status(gateway, message_id)
    assert done.status == "sent"
    assert len(await emulator.sms_requests()) == 2
    assert len(await emulator.sms()) == 1
    assert events.statuses(message_id) == ["sent"]


async def test_a_crash_then_a_failed_lookup_still_does_not_use_up_the_budget(
    client: httpx.AsyncClient, gateway: Any, emulator: Emulator, rig: Pipeline, connected: Any, clock: ManualClock
) -> None:
    tenant_a, _ = connected
    message_id = await send(client, tenant_a, body="after the outage")
    await _killed_before_the_request(gateway, rig, clock, message_id, MAX_ATTEMPTS - 2)
    await emulator.faults({"serverError": [{"path": STORE_PATH, "count": 1}, {"path": SMS_PATH, "count": 1}]})
    clock.advance(121)
    await rig.worker.run_until_idle()  # the lookup meets a 503: looked up again later
    assert len(await emulator.sms_requests()) == 0
    clock.advance(400)
    await rig.worker.run_until_idle()  # not there: the fifth attempt again, a 503
    assert len(await emulator.sms_requests()) == 1
    assert (await status(gateway, message_id)).status == "sending", "the attempt cut short was counted"
    clock.advance(400)
    await rig.worker.run_until_idle()
    assert (await status(gateway, message_id)).status == "sent"
    assert len(await emulator.sms()) == 1


async def test_the_sixth_attempt_redone_after_a_crash_is_still_the_last(
    client: httpx.AsyncClient, gateway: Any, emulator: Emulator, rig: Pipeline, connected: Any, clock: ManualClock
) -> None:
    tenant_a, _ = connected
    message_id = await send(client, tenant_a, body="last chance")
    # Five failed attempts; the sixth is cut short by a crash, re-done by the survivor and fails:
    # six attempts with an outcome, the budget is spent.
    await _killed_before_the_request(gateway, rig, clock, message_id, MAX_ATTEMPTS - 1)
    await emulator.faults({"serverError": {"path": SMS_PATH, "count": 1, "status": 503}})
    clock.advance(121)
    await rig.worker.run_until_idle()
    failed = await status(gateway, message_id)
    assert (failed.status, failed.error) == ("failed", "CMN-211: Service Temporary Unavailable")
    assert len(await emulator.sms_requests()) == 1


async def test_an_unreadable_answer_to_an_accepted_sms_is_adopted_not_failed(
    client: httpx.AsyncClient, gateway: Any, emulator: Emulator, rig: Pipeline, connected: Any, clock: ManualClock
) -> None:
    tenant_a, _ = connected
    # RingCentral accepts the SMS but its 200 answer cannot be read: the text may well have gone.
    await emulator.faults({"garble": {"path": SMS_PATH, "method": "POST", "count": 1}})
    async with recording(gateway.broker) as events:
        message_id = await send(client, tenant_a, body="accepted, unreadable")
        await rig.worker.run_until_idle()
        row = await status(gateway, message_id)
        assert (row.status, row.error) == ("sending", None), "an SMS RingCentral accepted was failed"
        clock.advance(3)  # the first backoff: 2 s ± 20 %
        await rig.worker.run_until_idle()
    assert len(await emulator.sms_requests()) == 1, "re-sent without looking it up first"
    [sms] = await emulator.sms()
    done = await status(gateway, message_id)
    assert (done.status, done.rc_message_id, done.error) == ("sent", sms["id"], None)
    assert len(await emulator.requests(STORE_PATH)) == 1
    assert events.statuses(message_id) == ["sending", "sent"]
