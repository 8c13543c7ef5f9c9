"""The fan-out dispatcher against real receivers on loopback sockets: payload and signing,
faults that must be recorded and contained, the outbox after a crash, drain, SSRF at delivery,
and the test-webhook / webhook-deliveries routes (api.md §4, §6.2-§6.4)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from gravity_sms.delivery.dispatcher import OVERLOADED, WebhookDispatcher
from gravity_sms.domain.clock import ManualClock
from gravity_sms.domain.fanout import inbound_event, trigger_payload
from gravity_sms.domain.provider import RcMessage
from gravity_sms.settings import Settings
from gravity_sms.store.tables import delivery_log, messages
from tests.conftest import Actor, FakeResolver, client_for, make_actor
from tests.inbound_support import NUMBER, SENDER, Receiver

TIMEOUT = 1.0


@pytest.fixture
def clock() -> ManualClock:
    # Signatures are checked by standardwebhooks against the real time (5 minutes tolerance).
    return ManualClock(datetime.now(UTC))


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        env="test",
        data_dir=tmp_path,
        public_url="http://gateway.test",
        webhook_timeout_seconds=TIMEOUT,
        _env_file=None,
    )  # type: ignore[call-arg]


@pytest.fixture
async def receivers(gateway: Any) -> AsyncIterator[list[Receiver]]:
    started: list[Receiver] = []
    yield started
    await gateway.dispatcher.close()  # its keep-alive connections
    for r in started:
        await r.stop()


async def receiver(receivers: list[Receiver], mode: str = "ok") -> Receiver:
    r = await Receiver(mode=mode).start()
    receivers.append(r)
    return r


def sms(rc_id: str = "2718281828459", text: str = "Hey, is my appointment still on?", to: str = NUMBER) -> RcMessage:
    return RcMessage(
        id=rc_id,
        direction="Inbound",
        status="Received",
        from_number=SENDER,
        to_numbers=(to,),
        text=text,
        created_at=datetime(2026, 3, 1, 14, 30, tzinfo=UTC),
    )


async def app_with_hook(gw: Any, tenant_id: str, url: str | None, name: str = "hook") -> Actor:
    return await make_actor(gw, name, tenant_id=tenant_id, webhook_url=url)


async def log_rows(gw: Any) -> list[Any]:
    async with gw.db.read() as c:
        return list((await c.execute(select(delivery_log).order_by(delivery_log.c.url))).all())


async def pending(gw: Any, message_id: str) -> Any:
    async with gw.db.read() as c:
        return (await c.execute(select(messages).where(messages.c.id == message_id))).one()


# --- payload, headers, signing ------------------------------------------------------------------
async def test_every_app_with_a_webhook_gets_the_signed_payload_once(
    gateway: Any, tenant_a: Actor, tenant_b: Actor, receivers: list[Receiver]
) -> None:
    r1, r2, r_other = [await receiver(receivers) for _ in range(3)]
    a1 = await app_with_hook(gateway, tenant_a.tenant_id, r1.url, "one")
    a2 = await app_with_hook(gateway, tenant_a.tenant_id, r2.url, "two")
    await app_with_hook(gateway, tenant_b.tenant_id, r_other.url, "other tenant")
    msg, created = await gateway.inbound.accept(tenant_a.tenant_id, "ext", sms())
    assert created
    await gateway.dispatcher.run_until_idle()

    for rec, actor in ((r1, a1), (r2, a2)):
        assert len(rec.received) == 1
        got = rec.received[0]
        assert got.method == "POST"
        assert got.headers["content-type"] == "application/json"
        assert got.headers["user-agent"].startswith("GravitySMS-Webhook/")
        assert got.headers["webhook-id"] == msg.id
        assert Webhook(actor.secret).verify(got.body, got.headers) == inbound_event(msg)
        assert got.json() == {
            "type": "sms_inbound",
            "messageId": msg.id,
            "from": SENDER,
            "to": NUMBER,
            "body": "Hey, is my appointment still on?",
            "rcMessageId": "2718281828459",
            "tenantId": tenant_a.tenant_id,
            "timestamp": "2026-03-01T14:30:00.000Z",
        }
        with pytest.raises(WebhookVerificationError):
            Webhook(tenant_b.secret).verify(got.body, got.headers)
    assert r_other.received == []
    rows = await log_rows(gateway)
    assert [(r.success, r.status_code, r.message_id) for r in rows] == [(True, 200, msg.id)] * 2
    assert (await pending(gateway, msg.id)).fanout_pending in (False, 0)


async def test_rotation_signs_with_both_secrets(gateway: Any, tenant_a: Actor, receivers: list[Receiver]) -> None:
    r = await receiver(receivers)
    actor = await app_with_hook(gateway, tenant_a.tenant_id, r.url)
    new_secret = (await gateway.apps.rotate_webhook_secret(None, actor.app_id))["webhookSecret"]
    await gateway.inbound.accept(tenant_a.tenant_id, "ext", sms())
    await gateway.dispatcher.run_until_idle()
    got = r.received[0]
    assert len(got.headers["webhook-signature"].split(" ")) == 2
    Webhook(actor.secret).verify(got.body, got.headers)
    Webhook(new_secret).verify(got.body, got.headers)


async def test_triggers_get_their_payload_filtered_by_number(
    gateway: Any, client: httpx.AsyncClient, tenant_a: Actor, receivers: list[Receiver]
) -> None:
    every, mine, other = [await receiver(receivers) for _ in range(3)]
    for url, phone in ((every.url, None), (mine.url, NUMBER), (other.url, "+15550009999")):
        body: dict[str, Any] = {"callbackUrl": url}
        if phone:
            body["phoneNumber"] = phone
        r = await client.post("/v1/triggers/sms-received/subscribe", json=body, headers=tenant_a.headers)
        assert r.status_code == 201, r.text
    msg, _ = await gateway.inbound.accept(tenant_a.tenant_id, "ext", sms())
    await gateway.dispatcher.run_until_idle()
    assert other.received == []
    for rec in (every, mine):
        (got,) = rec.received
        assert got.json() == trigger_payload(msg)
        assert set(got.json()) == {"messageId", "from", "to", "text", "receivedAt"}
        assert got.headers["user-agent"].startswith("GravitySMS-Webhook/")
    assert len(await log_rows(gateway)) == 2


async def test_no_targets_marks_the_message_done(gateway: Any, tenant_a: Actor) -> None:
    msg, _ = await gateway.inbound.accept(tenant_a.tenant_id, "ext", sms())
    await gateway.dispatcher.run_until_idle()
    assert (await pending(gateway, msg.id)).fanout_pending in (False, 0)
    assert await log_rows(gateway) == []


# --- faults ---------------------------------------------------------------------------------------
async def test_faulty_receivers_are_recorded_and_contained(
    gateway: Any, tenant_a: Actor, receivers: list[Receiver]
) -> None:
    healthy = await receiver(receivers)
    redirect_target = await receiver(receivers)
    faulty = {mode: await receiver(receivers, mode) for mode in ("500", "hang", "close", "huge", "redirect")}
    faulty["redirect"].redirect_to = redirect_target.url
    urls = {healthy.url: "ok", **{r.url: mode for mode, r in faulty.items()}}
    for url, mode in urls.items():
        await app_with_hook(gateway, tenant_a.tenant_id, url, mode)
    started = time.perf_counter()
    await gateway.inbound.accept(tenant_a.tenant_id, "ext", sms())
    await gateway.dispatcher.run_until_idle()
    elapsed = time.perf_counter() - started
    assert elapsed < TIMEOUT + 3, elapsed  # the hanging one is cut at the timeout, the rest run alongside

    rows = {urls[r.url]: r for r in await log_rows(gateway)}
    assert set(rows) == {"ok", "500", "hang", "close", "huge", "redirect"}
    assert rows["ok"].success and rows["ok"].status_code == 200
    assert (rows["500"].success, rows["500"].status_code, rows["500"].error) == (False, 500, "HTTP 500")
    assert not rows["hang"].success and rows["hang"].status_code is None
    assert rows["hang"].error == "Timed out after 1s"
    assert not rows["close"].success and rows["close"].error.startswith("Connection failed")
    assert rows["huge"].success is True  # a 2xx; only 2 KB of its 10 MB were read
    assert (rows["redirect"].success, rows["redirect"].status_code) == (False, 302)
    assert redirect_target.received == []  # redirects are never followed
    assert all(len(r.received) == 1 for r in faulty.values())  # no retry
    assert len(healthy.received) == 1


async def test_a_hanging_receiver_does_not_delay_another(
    gateway: Any, tenant_a: Actor, receivers: list[Receiver]
) -> None:
    hang = await receiver(receivers, "hang")
    fast = await receiver(receivers)
    await app_with_hook(gateway, tenant_a.tenant_id, hang.url, "hang")
    await app_with_hook(gateway, tenant_a.tenant_id, fast.url, "fast")
    await gateway.inbound.accept(tenant_a.tenant_id, "ext", sms())
    task = asyncio.create_task(gateway.dispatcher.run_until_idle())
    started = time.perf_counter()
    await fast.wait_for(1, timeout=TIMEOUT * 0.8)
    assert time.perf_counter() - started < TIMEOUT * 0.8
    await task


async def test_an_endpoint_over_its_share_waits_its_turn_for_a_bounded_time(
    gateway: Any, clock: ManualClock, tenant_a: Actor, receivers: list[Receiver]
) -> None:
    hang = await receiver(receivers, "hang")
    await app_with_hook(gateway, tenant_a.tenant_id, hang.url)
    gateway.dispatcher.per_endpoint = 1
    gateway.dispatcher.queue_wait = 0.2
    await gateway.inbound.accept(tenant_a.tenant_id, "ext", sms("1"))
    await gateway.inbound.accept(tenant_a.tenant_id, "ext", sms("2"))
    await gateway.dispatcher.run_until_idle()
    errors = sorted(r.error for r in await log_rows(gateway))
    assert errors == sorted([OVERLOADED, "Timed out after 1s"])
    assert len(hang.received) == 1  # the second never reached the hanging endpoint


@contextlib.asynccontextmanager
async def running(dispatcher: WebhookDispatcher) -> AsyncIterator[None]:
    """The dispatcher's worker loop: accepted messages start at once, as in a serving process."""
    worker = asyncio.create_task(dispatcher.run())
    await asyncio.sleep(0)
    try:
        yield
    finally:
        worker.cancel()
        with pytest.raises(asyncio.CancelledError):
            await worker


async def test_a_hanging_endpoint_fails_its_overflow_at_once(
    gateway: Any, tenant_a: Actor, receivers: list[Receiver]
) -> None:
    hang = await receiver(receivers, "hang")
    await app_with_hook(gateway, tenant_a.tenant_id, hang.url)
    gateway.dispatcher.per_endpoint = 1
    gateway.dispatcher.queue_wait = TIMEOUT * 3
    async with running(gateway.dispatcher):
        await gateway.inbound.accept(tenant_a.tenant_id, "ext", sms("1"))
        await gateway.inbound.accept(tenant_a.tenant_id, "ext", sms("2"))  # waits for the first's slot
        await hang.wait_for(2, timeout=TIMEOUT * 3)  # the first timed out; the second holds the slot
        await gateway.inbound.accept(tenant_a.tenant_id, "ext", sms("3"))
        await gateway.dispatcher.run_until_idle()
    rows = await log_rows(gateway)
    assert sorted((r.error, r.duration_ms == 0) for r in rows) == sorted(
        [("Timed out after 1s", False), ("Timed out after 1s", False), (OVERLOADED, True)]
    )
    assert len(hang.received) == 2  # the third never waited in line behind a hanging endpoint


async def test_a_hanging_endpoint_keeps_only_a_few_probes_in_flight(
    gateway: Any, tenant_a: Actor, receivers: list[Receiver]
) -> None:
    hang = await receiver(receivers, "hang")
    await app_with_hook(gateway, tenant_a.tenant_id, hang.url)
    gateway.dispatcher.probes = 2
    async with running(gateway.dispatcher):
        await gateway.inbound.accept(tenant_a.tenant_id, "ext", sms("a"))
        await asyncio.sleep(TIMEOUT / 2)
        await gateway.inbound.accept(tenant_a.tenant_id, "ext", sms("b"))
        await asyncio.sleep(TIMEOUT * 0.7)  # "a" timed out, "b" is still in flight
        for rc_id in "cdef":
            await gateway.inbound.accept(tenant_a.tenant_id, "ext", sms(rc_id))
        await gateway.dispatcher.run_until_idle()
    errors = sorted(r.error for r in await log_rows(gateway))
    assert errors == sorted(["Timed out after 1s"] * 3 + [OVERLOADED] * 3)
    assert len(hang.received) == 3  # "a", "b" and one probe; not all 100 of its share


async def test_a_burst_to_a_slow_endpoint_queues_instead_of_failing(
    gateway: Any, tenant_a: Actor, receivers: list[Receiver]
) -> None:
    slow = await receiver(receivers, "slow-ok")
    slow.slow_seconds = 0.05
    await app_with_hook(gateway, tenant_a.tenant_id, slow.url)
    gateway.dispatcher.per_endpoint = 2
    for i in range(6):
        await gateway.inbound.accept(tenant_a.tenant_id, "ext", sms(str(i)))
    await gateway.dispatcher.run_until_idle()
    rows = await log_rows(gateway)
    assert len(rows) == 6 and all(r.success for r in rows), [r.error for r in rows]
    assert len(slow.received) == 6 and slow.connections <= 2  # never more than its share at once
    assert gateway.dispatcher._endpoints == {}  # nothing left behind once the line is empty


# --- the outbox: crash and drain ---------------------------------------------------------------
async def test_a_message_left_by_a_dead_process_is_delivered_once_to_missing_targets(
    gateway: Any, clock: ManualClock, tenant_a: Actor, receivers: list[Receiver]
) -> None:
    done, missing = await receiver(receivers), await receiver(receivers)
    a_done = await app_with_hook(gateway, tenant_a.tenant_id, done.url, "done")
    await app_with_hook(gateway, tenant_a.tenant_id, missing.url, "missing")
    msg, _ = await gateway.inbound.save(tenant_a.tenant_id, "ext", sms())
    # As a dispatcher that died mid-fan-out leaves it: its lease, one attempt logged.
    async with gateway.db.write() as c:
        await c.execute(
            update(messages)
            .where(messages.c.id == msg.id)
            .values(lease_owner="dead-node", lease_expires_at=clock.now() + timedelta(seconds=15))
        )
        await c.execute(
            delivery_log.insert().values(
                id="dlv_before_crash",
                tenant_id=tenant_a.tenant_id,
                app_id=a_done.app_id,
                message_id=msg.id,
                url=done.url,
                status_code=200,
                success=True,
                duration_ms=3,
                created_at=clock.now(),
            )
        )
    await gateway.dispatcher.run_until_idle()
    assert done.received == [] and missing.received == []  # the lease still holds
    clock.advance(16)
    await gateway.dispatcher.run_until_idle()
    await gateway.dispatcher.run_until_idle()
    assert done.received == []
    assert len(missing.received) == 1
    assert (await pending(gateway, msg.id)).fanout_pending in (False, 0)


async def test_live_path_delivers_without_waiting_for_a_scan(
    gateway: Any, tenant_a: Actor, receivers: list[Receiver]
) -> None:
    r = await receiver(receivers)
    await app_with_hook(gateway, tenant_a.tenant_id, r.url)
    dispatcher: WebhookDispatcher = gateway.dispatcher
    dispatcher.scan_interval = 3600
    async with running(dispatcher):
        msg, _ = await gateway.inbound.accept(tenant_a.tenant_id, "ext", sms())
        row = await pending(gateway, msg.id)
        assert row.lease_owner == dispatcher.node_id  # stamped at insert: no scan will take it
        await r.wait_for(1, timeout=5)


async def test_drain_cancels_after_the_deadline_and_releases_the_lease(
    gateway: Any, tenant_a: Actor, receivers: list[Receiver]
) -> None:
    hang = await receiver(receivers, "hang")
    await app_with_hook(gateway, tenant_a.tenant_id, hang.url)
    dispatcher: WebhookDispatcher = gateway.dispatcher
    dispatcher.scan_interval = 3600
    async with running(dispatcher):
        msg, _ = await gateway.inbound.accept(tenant_a.tenant_id, "ext", sms())
        await hang.wait_for(1, timeout=5)
        await dispatcher.drain(0.05)
        row = await pending(gateway, msg.id)
        assert row.fanout_pending in (True, 1)
        assert row.lease_owner is None  # free for the next process at once


# --- SSRF at delivery time ----------------------------------------------------------------------
async def test_rebound_dns_is_refused_at_delivery(
    settings: Settings, clock: ManualClock, database: Any, tenant_a: Actor
) -> None:
    resolver = FakeResolver()
    async with client_for(settings, clock, database, resolver=resolver, block_private_webhooks=True) as (gw, _):
        actor = await make_actor(gw, "ssrf", tenant_id=tenant_a.tenant_id, webhook_url="http://hooks.example.com/h")
        assert actor.app_id
        resolver.table["hooks.example.com"] = ["10.0.0.5"]  # rebinding after the URL was accepted
        await gw.inbound.accept(tenant_a.tenant_id, "ext", sms())
        await gw.dispatcher.run_until_idle()
        (row,) = await log_rows(gw)
        assert not row.success and row.status_code is None
        assert row.error == "Webhook URL resolves to a private or internal address"


# --- test-webhook and the delivery log API ------------------------------------------------------
async def test_test_webhook_reports_the_exchange(
    gateway: Any, client: httpx.AsyncClient, tenant_a: Actor, receivers: list[Receiver]
) -> None:
    r = await receiver(receivers)
    actor = await app_with_hook(gateway, tenant_a.tenant_id, r.url)
    res = await client.post(f"/v1/apps/{actor.app_id}/test-webhook", headers=actor.headers)
    assert res.status_code == 200, res.text
    body = res.json()
    assert body["success"] is True and body["statusCode"] == 200 and body["error"] is None
    assert body["body"] == "received"
    assert isinstance(body["durationMs"], int)
    (got,) = r.received
    payload = Webhook(actor.secret).verify(got.body, got.headers)
    assert payload["type"] == "test" and payload["messageId"] == "msg_000000000000"
    assert payload["tenantId"] == tenant_a.tenant_id and payload["rcMessageId"] is None
    assert payload["body"] == "Test webhook from Gravity SMS"
    listing = (await client.get(f"/v1/apps/{actor.app_id}/webhook-deliveries", headers=actor.headers)).json()
    assert listing["total"] == 1 and listing["page"] == 1 and listing["limit"] == 20
    (d,) = listing["deliveries"]
    assert set(d) == {"deliveryId", "messageId", "url", "statusCode", "success", "error", "durationMs", "createdAt"}
    assert d["messageId"] == "msg_000000000000" and d["url"] == r.url and d["success"] is True


async def test_test_webhook_failure_and_huge_body(
    gateway: Any, client: httpx.AsyncClient, tenant_a: Actor, receivers: list[Receiver]
) -> None:
    huge = await receiver(receivers, "huge")
    actor = await app_with_hook(gateway, tenant_a.tenant_id, huge.url)
    body = (await client.post(f"/v1/apps/{actor.app_id}/test-webhook", headers=actor.headers)).json()
    assert body["success"] is True and len(body["body"]) == 2048
    await client.put(
        f"/v1/apps/{actor.app_id}", json={"webhookUrl": (await receiver(receivers, "500")).url}, headers=actor.headers
    )
    body = (await client.post(f"/v1/apps/{actor.app_id}/test-webhook", headers=actor.headers)).json()
    assert (body["success"], body["statusCode"], body["error"], body["body"]) == (False, 500, "HTTP 500", "nope")


async def test_test_webhook_without_url_and_isolation(
    gateway: Any, client: httpx.AsyncClient, tenant_a: Actor, tenant_b: Actor
) -> None:
    r = await client.post(f"/v1/apps/{tenant_a.app_id}/test-webhook", headers=tenant_a.headers)
    assert (r.status_code, r.json()) == (400, {"error": "App has no webhookUrl configured"})
    for path in ("test-webhook", "webhook-deliveries"):
        method = client.post if path == "test-webhook" else client.get
        r = await method(f"/v1/apps/{tenant_a.app_id}/{path}", headers=tenant_b.headers)
        assert (r.status_code, r.json()) == (404, {"error": "App not found"})
        r = await method(f"/v1/apps/nope/{path}", headers=tenant_b.headers)
        assert (r.status_code, r.json()) == (400, {"error": "Invalid appId format"})


async def test_delivery_listing_pages_newest_first(
    gateway: Any, client: httpx.AsyncClient, clock: ManualClock, tenant_a: Actor, receivers: list[Receiver]
) -> None:
    r = await receiver(receivers)
    actor = await app_with_hook(gateway, tenant_a.tenant_id, r.url)
    ids = []
    for i in range(5):
        msg, _ = await gateway.inbound.accept(tenant_a.tenant_id, "ext", sms(str(i)))
        ids.append(msg.id)
        await gateway.dispatcher.run_until_idle()
        clock.advance(1)
    url = f"/v1/apps/{actor.app_id}/webhook-deliveries"
    pages = [(await client.get(url, params={"page": p, "limit": 2}, headers=actor.headers)).json() for p in (1, 2, 3)]
    assert [p["total"] for p in pages] == [5, 5, 5]
    assert [d["messageId"] for p in pages for d in p["deliveries"]] == ids[::-1]
    for bad in ({"limit": "0"}, {"limit": "101"}, {"page": "0"}, {"page": "x"}):
        res = await client.get(url, params=bad, headers=actor.headers)
        name = next(iter(bad))
        assert (res.status_code, res.json()) == (400, {"error": f"{name} is invalid"})
