"""ConnectionScheduler driven by the clock and the emulator's fault injection: renewal,
re-creation after blacklisting or deletion, backfill after an outage, backoff, disconnection."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from gravity_sms.delivery.scheduler import ConnectionScheduler
from gravity_sms.domain.provider import RcMessage
from gravity_sms.store import Database
from gravity_sms.store.tables import messages
from tests.conftest import Actor
from tests.rc_support import EXT, SMS_NUMBER, Stack, actor, in_process_stack

DAY = 86400
VERIFY_SECONDS = 11 * 60


class FakeSink:
    def __init__(self) -> None:
        self.accepted: list[tuple[str, str, RcMessage]] = []

    async def accept(self, tenant_id: str, extension_id: str, sms: RcMessage) -> tuple[Any, bool]:
        self.accepted.append((tenant_id, extension_id, sms))
        return None, True


@pytest.fixture
async def stack(database: Database, tmp_path: Path) -> AsyncIterator[Stack]:
    async with in_process_stack(database, tmp_path, enforce_rate_limits=False) as s:
        yield s


@pytest.fixture
async def acme(stack: Stack) -> Actor:
    a = await actor(stack.gw, "Acme")
    await stack.connect(a)
    return a


def scheduler(stack: Stack, sink: Any = None) -> ConnectionScheduler:
    return ConnectionScheduler(stack.gw.connections, stack.gw.locks, stack.gw.clock, sink=sink)


def subscription_ids(stack: Stack) -> list[str]:
    return list(stack.emu_state.subscriptions)


async def stored_subscriptions(stack: Stack, acme: Actor) -> list[Any]:
    return list(await stack.gw.store.connections.extension_subscriptions(acme.tenant_id, EXT))


async def inbound_rows(stack: Stack) -> list[tuple[str, str]]:
    async with stack.gw.db.read() as conn:
        rows = (await conn.execute(select(messages.c.rc_message_id, messages.c.body))).all()
    return sorted((r.rc_message_id, r.body) for r in rows)


async def test_subscription_is_renewed_with_days_to_spare(stack: Stack, acme: Actor) -> None:
    worker = scheduler(stack)
    await worker.run_until_idle()
    assert await stack.requests("/restapi/v1.0/subscription/", "POST") == []
    [sub_id] = subscription_ids(stack)
    await stack.advance(4.5 * DAY)
    await worker.run_until_idle()
    renewals = await stack.requests(f"/restapi/v1.0/subscription/{sub_id}/renew", "POST")
    assert [r["status"] for r in renewals] == [200]
    [row] = await stored_subscriptions(stack, acme)
    remaining = row.expires_at - stack.clock.now()
    assert remaining.total_seconds() > 6.9 * DAY
    assert stack.emu_state.subscriptions[sub_id].expiration_time - stack.emu_state.clock.now() > 6.9 * DAY
    # The access token had expired in between: refreshed once, not per step.
    tokens = await stack.requests("/restapi/oauth/token", "POST")
    assert [t["form"]["grant_type"] for t in tokens] == ["authorization_code", "refresh_token"]


@pytest.mark.parametrize("fault", ["blacklist", "delete"])
async def test_blacklisted_or_missing_subscription_is_recreated_and_missed_sms_backfilled(
    stack: Stack, acme: Actor, fault: str
) -> None:
    sink = FakeSink()
    worker = scheduler(stack, sink)
    await worker.run_until_idle()  # first pass of the process: a (so far empty) backfill
    assert sink.accepted == []
    [old] = subscription_ids(stack)
    if fault == "blacklist":
        r = await stack.emu.post(f"/_emulator/subscriptions/{old}/blacklist", json={})
    else:
        r = await stack.emu.delete(f"/_emulator/subscriptions/{old}")
    assert r.status_code == 200
    missed = await stack.emu.post(
        "/_emulator/inbound", json={"from": "+15551234567", "to": SMS_NUMBER, "text": "while you were away"}
    )
    assert missed.json()["deliveries"] == []
    await stack.advance(11 * 60)
    await worker.run_until_idle()
    [new] = subscription_ids(stack)
    assert new != old and stack.emu_state.subscriptions[new].status == "Active"
    assert [s.id for s in await stored_subscriptions(stack, acme)] == [new]
    assert [(t, e, m.id, m.text) for t, e, m in sink.accepted] == [
        (acme.tenant_id, EXT, missed.json()["id"], "while you were away")
    ]


async def test_expiry_reminder_renews_now(stack: Stack, acme: Actor) -> None:
    [sub_id] = subscription_ids(stack)
    renew_path = f"/restapi/v1.0/subscription/{sub_id}/renew"
    # Within a day of expiry the emulator sends the reminder event to the gateway's webhook,
    # which hands it to handle_expiry_reminder: renewed without any scheduler pass.
    await stack.advance(6.2 * DAY)
    reminders = [d for d in stack.emu_state.deliveries if d.kind != "handshake"]
    assert reminders and reminders[0].status == 200
    assert [r["status"] for r in await stack.requests(renew_path)] == [200]
    assert stack.emu_state.subscriptions[sub_id].expiration_time - stack.emu_state.clock.now() > 6.9 * DAY
    await stack.gw.connections.handle_expiry_reminder(sub_id)
    assert [r["status"] for r in await stack.requests(renew_path)] == [200, 200]
    await stack.gw.connections.handle_expiry_reminder("unknown-subscription")  # ignored, never raises


async def test_outage_backs_off_then_backfills_each_missed_sms_exactly_once(stack: Stack, acme: Actor) -> None:
    assert stack.gw.inbound is not None, "the inbound pipeline is wired"
    worker = scheduler(stack, stack.gw.inbound)
    await worker.run_until_idle()
    delivered = await stack.emu.post(
        "/_emulator/inbound", json={"from": "+15551234567", "to": SMS_NUMBER, "text": "seen"}
    )
    assert [d["status"] for d in delivered.json()["deliveries"]] == [200]
    # RingCentral goes down: every REST and OAuth call answers 503.
    await stack.emu.post("/_emulator/faults", json={"serverError": {"path": "/restapi/*", "probability": 1.0}})
    missed = []
    for text in ("one", "two", "three"):
        r = await stack.emu.post(
            "/_emulator/inbound?deliver=false", json={"from": "+15551234567", "to": SMS_NUMBER, "text": text}
        )
        missed.append((r.json()["id"], text))
    await stack.advance(11 * 60)
    before = len(await stack.requests("/restapi/"))
    await worker.run_until_idle()
    after_first = len(await stack.requests("/restapi/"))
    assert after_first > before
    until = worker.backoff_until(acme.tenant_id, EXT)
    assert until is not None and (until - stack.clock.now()).total_seconds() >= 30
    for _ in range(5):  # no hot loop: nothing is tried again before the backoff ends
        await worker.run_until_idle()
    assert len(await stack.requests("/restapi/")) == after_first
    # RingCentral is back.
    await stack.emu.delete("/_emulator/faults")
    await stack.advance(3600)
    await worker.run_until_idle()
    expected = sorted([(delivered.json()["id"], "seen"), *missed])
    assert await inbound_rows(stack) == expected
    await stack.advance(16 * 60)
    await worker.run_until_idle()  # the periodic safety-net backfill sees them again: no duplicates
    assert await inbound_rows(stack) == expected


async def test_a_success_after_an_outage_ends_the_backoff_at_the_next_pass(stack: Stack, acme: Actor) -> None:
    assert stack.gw.inbound is not None
    worker = scheduler(stack, stack.gw.inbound)
    await worker.run_until_idle()
    await stack.emu.post("/_emulator/faults", json={"serverError": {"path": "/restapi/*", "probability": 1.0}})
    r = await stack.emu.post(
        "/_emulator/inbound?deliver=false", json={"from": "+15551234567", "to": SMS_NUMBER, "text": "missed"}
    )
    missed = (r.json()["id"], "missed")
    for _ in range(4):  # four failed visits: the next one is minutes away
        await stack.advance(3600)
        await worker.run_until_idle()
    until = worker.backoff_until(acme.tenant_id, EXT)
    assert until is not None and (until - stack.clock.now()).total_seconds() >= 240
    await worker.run_until_idle()
    assert missed not in await inbound_rows(stack)  # still backing off
    # RingCentral is back and another call (say, a send) succeeds: the next pass goes ahead.
    await stack.emu.delete("/_emulator/faults")
    await stack.advance(130)  # past the token refresh's own backoff (at most 2 min), not the scheduler's
    await stack.gw.connections.call(acme.tenant_id, EXT, stack.gw.rc.get_extension)
    await worker.run_until_idle()
    assert missed in await inbound_rows(stack)
    assert worker.backoff_until(acme.tenant_id, EXT) is None


async def test_an_early_visit_that_fails_again_keeps_backing_off(stack: Stack, acme: Actor) -> None:
    worker = scheduler(stack, FakeSink())
    await worker.run_until_idle()
    await stack.emu.post(
        "/_emulator/faults", json={"serverError": {"path": "/restapi/v1.0/subscription*", "probability": 1.0}}
    )
    await stack.advance(VERIFY_SECONDS)
    await worker.run_until_idle()  # the subscription check fails: backing off
    assert worker.backoff_until(acme.tenant_id, EXT) is not None
    stack.clock.advance(1)
    await stack.gw.connections.call(acme.tenant_id, EXT, stack.gw.rc.get_extension)  # other calls work
    seen = len(await stack.requests("/restapi/v1.0/subscription"))
    await worker.run_until_idle()  # one early visit: fails again
    early = len(await stack.requests("/restapi/v1.0/subscription"))
    assert early > seen
    for _ in range(3):  # and no more before the backoff ends, successes elsewhere or not
        stack.clock.advance(1)
        await stack.gw.connections.call(acme.tenant_id, EXT, stack.gw.rc.get_extension)
        await worker.run_until_idle()
    assert len(await stack.requests("/restapi/v1.0/subscription")) == early


async def test_a_rejected_refresh_token_stops_the_scheduler_for_that_extension(stack: Stack, acme: Actor) -> None:
    worker = scheduler(stack, FakeSink())
    await stack.emu.post("/_emulator/tokens/revoke-refresh", json={"extensionId": EXT})
    await stack.advance(3600)
    await worker.run_until_idle()
    status = (await stack.api.get("/v1/rc/status", headers=acme.headers)).json()
    assert status["connected"] is False and status["extensions"][0]["status"] == "disconnected"
    seen = len(await stack.requests("/restapi/"))
    for _ in range(3):
        await stack.advance(3600)
        await worker.run_until_idle()
    assert len(await stack.requests("/restapi/")) == seen


async def test_missing_subscription_row_is_created(stack: Stack, acme: Actor) -> None:
    [old] = subscription_ids(stack)
    await stack.gw.store.connections.delete_subscription(old)
    await scheduler(stack).run_until_idle()
    assert len(await stored_subscriptions(stack, acme)) == 1
    assert len(stack.emu_state.subscriptions) == 2  # the unknown old one expires on its own
