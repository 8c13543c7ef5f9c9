"""The fan-out's per-tenant target cache: changes made through the API reach the very next
event, a change made elsewhere within the TTL, concurrent misses share one read, and a tenant
without targets costs its inbound rows no outbox work (docs/webhooks.md, "Target cache")."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from standardwebhooks.webhooks import Webhook

from gravity_sms.delivery.dispatcher import WebhookDispatcher
from gravity_sms.delivery.target_cache import TargetCache
from gravity_sms.domain.clock import ManualClock
from gravity_sms.domain.fanout import Trigger
from gravity_sms.domain.models import App, AppSecrets
from gravity_sms.domain.provider import RcMessage
from gravity_sms.settings import Settings
from gravity_sms.store.tables import delivery_log, messages
from tests.conftest import Actor, make_actor
from tests.inbound_support import NUMBER, SENDER, Receiver

TRIGGERS = "/v1/triggers/sms-received/subscribe"


@pytest.fixture
def clock() -> ManualClock:
    # Signatures are checked by standardwebhooks against the real time (5 minutes tolerance).
    return ManualClock(datetime.now(UTC))


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        env="test", data_dir=tmp_path, public_url="http://gateway.test", webhook_timeout_seconds=1.0, _env_file=None
    )  # type: ignore[call-arg]


@pytest.fixture
async def receivers(gateway: Any) -> AsyncIterator[list[Receiver]]:
    started: list[Receiver] = []
    yield started
    await gateway.dispatcher.close()
    for r in started:
        await r.stop()


async def receiver(receivers: list[Receiver]) -> Receiver:
    r = await Receiver().start()
    receivers.append(r)
    return r


@pytest.fixture
async def running(gateway: Any) -> AsyncIterator[WebhookDispatcher]:
    """The dispatcher as a serving node runs it (live hand-off), without periodic scans."""
    dispatcher: WebhookDispatcher = gateway.dispatcher
    dispatcher.scan_interval = 3600
    runner = asyncio.create_task(dispatcher.run())
    await asyncio.sleep(0)
    yield dispatcher
    runner.cancel()
    with pytest.raises(asyncio.CancelledError):
        await runner


_serial = iter(range(10**12, 10**13))


def sms() -> RcMessage:
    return RcMessage(
        id=str(next(_serial)),
        direction="Inbound",
        status="Received",
        from_number=SENDER,
        to_numbers=(NUMBER,),
        text="Are you open today?",
        created_at=datetime(2026, 3, 1, 14, 30, tzinfo=UTC),
    )


async def event(gw: Any, tenant_id: str) -> str:
    msg, created = await gw.inbound.accept(tenant_id, "ext", sms())
    assert created
    await gw.dispatcher.run_until_idle()
    return str(msg.id)


async def row(gw: Any, message_id: str) -> Any:
    async with gw.db.read() as c:
        return (await c.execute(select(messages).where(messages.c.id == message_id))).one()


async def deliveries(gw: Any) -> int:
    async with gw.db.read() as c:
        return len((await c.execute(select(delivery_log.c.id))).all())


# --- invalidation through the API ---------------------------------------------------------------
async def test_webhook_url_set_to_null_delivers_nothing_to_that_app_from_the_next_event(
    gateway: Any, client: httpx.AsyncClient, tenant_a: Actor, receivers: list[Receiver]
) -> None:
    gone, kept = await receiver(receivers), await receiver(receivers)
    app = await make_actor(gateway, "gone", tenant_id=tenant_a.tenant_id, webhook_url=gone.url)
    await make_actor(gateway, "kept", tenant_id=tenant_a.tenant_id, webhook_url=kept.url)
    await event(gateway, tenant_a.tenant_id)  # fills the cache; the clock stands still from here
    assert (len(gone.received), len(kept.received)) == (1, 1)

    r = await client.put(f"/v1/apps/{app.app_id}", json={"webhookUrl": None}, headers=app.headers)
    assert r.status_code == 200 and r.json()["webhookUrl"] is None
    await event(gateway, tenant_a.tenant_id)
    assert (len(gone.received), len(kept.received)) == (1, 2)


async def test_deleted_app_gets_nothing_from_the_next_event(
    gateway: Any, client: httpx.AsyncClient, admin: Actor, tenant_a: Actor, receivers: list[Receiver]
) -> None:
    hook = await receiver(receivers)
    app = await make_actor(gateway, "doomed", tenant_id=tenant_a.tenant_id, webhook_url=hook.url)
    await event(gateway, tenant_a.tenant_id)
    r = await client.delete(f"/v1/apps/{app.app_id}", headers=admin.headers)
    assert r.status_code == 200
    await event(gateway, tenant_a.tenant_id)
    assert len(hook.received) == 1


async def test_a_new_trigger_receives_the_next_event_and_an_unsubscribed_one_does_not(
    gateway: Any, client: httpx.AsyncClient, tenant_a: Actor, receivers: list[Receiver]
) -> None:
    flow = await receiver(receivers)
    await event(gateway, tenant_a.tenant_id)  # cached: no targets at all
    r = await client.post(TRIGGERS, json={"callbackUrl": flow.url}, headers=tenant_a.headers)
    assert r.status_code == 201
    message_id = await event(gateway, tenant_a.tenant_id)
    assert [got.json()["messageId"] for got in flow.received] == [message_id]

    r = await client.delete(f"{TRIGGERS}/{r.json()['id']}", headers=tenant_a.headers)
    assert r.status_code == 200
    await event(gateway, tenant_a.tenant_id)
    assert len(flow.received) == 1


async def test_a_new_app_webhook_receives_the_next_event(
    gateway: Any, tenant_a: Actor, receivers: list[Receiver]
) -> None:
    hook = await receiver(receivers)
    await event(gateway, tenant_a.tenant_id)
    await make_actor(gateway, "late", tenant_id=tenant_a.tenant_id, webhook_url=hook.url)
    await event(gateway, tenant_a.tenant_id)
    assert len(hook.received) == 1


async def test_rotated_secret_signs_the_next_delivery(
    gateway: Any, client: httpx.AsyncClient, tenant_a: Actor, receivers: list[Receiver]
) -> None:
    hook = await receiver(receivers)
    app = await make_actor(gateway, "signed", tenant_id=tenant_a.tenant_id, webhook_url=hook.url)
    await event(gateway, tenant_a.tenant_id)  # secrets cached
    r = await client.post(f"/v1/apps/{app.app_id}/rotate-webhook-secret", headers=app.headers)
    new_secret = r.json()["webhookSecret"]
    await event(gateway, tenant_a.tenant_id)
    got = hook.received[-1]
    Webhook(new_secret).verify(got.body, got.headers)  # raises when only the old one signed it
    Webhook(app.secret).verify(got.body, got.headers)  # and the old one still, for 24 h


async def test_a_change_made_elsewhere_is_seen_once_the_ttl_passes(
    gateway: Any, clock: ManualClock, tenant_a: Actor, receivers: list[Receiver]
) -> None:
    hook = await receiver(receivers)
    app = await make_actor(gateway, "elsewhere", tenant_id=tenant_a.tenant_id, webhook_url=hook.url)
    await event(gateway, tenant_a.tenant_id)
    # Another node's PUT: the row changes, this process is not told.
    stored = await gateway.store.apps.get(app.app_id)
    await gateway.store.apps.update(replace(stored, webhook_url=None))
    await event(gateway, tenant_a.tenant_id)
    assert len(hook.received) == 2  # within the TTL this node still delivers from its cache
    clock.advance(1.01)
    await event(gateway, tenant_a.tenant_id)
    assert len(hook.received) == 2


# --- the no-target path ---------------------------------------------------------------------------
async def test_tenant_without_targets_stores_rows_already_fanned_out(
    gateway: Any, tenant_a: Actor, running: WebhookDispatcher
) -> None:
    first, _ = await gateway.inbound.save(tenant_a.tenant_id, "ext", sms())
    assert (await row(gateway, first.id)).fanout_pending in (True, 1)  # nothing known yet
    await gateway.inbound.announce(first)
    await running.run_until_idle()
    assert (await row(gateway, first.id)).fanout_pending in (False, 0)

    # Known to have no targets: the row is stored done, and its hand-off starts nothing.
    msg, _ = await gateway.inbound.save(tenant_a.tenant_id, "ext", sms())
    stored = await row(gateway, msg.id)
    assert stored.fanout_pending in (False, 0) and stored.lease_owner is None
    await gateway.inbound.announce(msg)
    assert running.scan_interval == 3600 and not running._tasks
    assert await deliveries(gateway) == 0


async def test_rows_stay_pending_when_the_tenant_has_targets_or_no_dispatcher_runs_here(
    gateway: Any, tenant_a: Actor, tenant_b: Actor, receivers: list[Receiver]
) -> None:
    await event(gateway, tenant_b.tenant_id)  # not running: a scan delivers, nothing is cached as "none"
    msg, _ = await gateway.inbound.save(tenant_b.tenant_id, "ext", sms())
    assert (await row(gateway, msg.id)).fanout_pending in (True, 1)  # an API-only node's row

    hook = await receiver(receivers)
    await make_actor(gateway, "hook", tenant_id=tenant_a.tenant_id, webhook_url=hook.url)
    await event(gateway, tenant_a.tenant_id)
    msg, _ = await gateway.inbound.save(tenant_a.tenant_id, "ext", sms())
    assert (await row(gateway, msg.id)).fanout_pending in (True, 1)


# --- the cache on fakes -----------------------------------------------------------------------------
class CountingDirectory:
    """In-memory apps and triggers that count the reads and can hold them open."""

    def __init__(self) -> None:
        self.apps: list[App] = []
        self.triggers: list[Trigger] = []
        self.reads = 0
        self.secret_reads = 0
        self.gate = asyncio.Event()
        self.gate.set()

    async def list_webhook_targets(self, tenant_id: str) -> list[App]:
        self.reads += 1
        await self.gate.wait()
        return list(self.apps)

    async def for_tenant(self, tenant_id: str) -> list[Trigger]:
        return list(self.triggers)

    async def insert(self, trigger: Trigger) -> None: ...

    async def get(self, trigger_id: str) -> Trigger | None: ...

    async def delete(self, trigger_id: str) -> bool: ...

    async def secrets(self, app_id: str) -> AppSecrets | None:
        self.secret_reads += 1
        await self.gate.wait()
        return AppSecrets(app_id, "whsec_new", "whsec_old", datetime(2026, 3, 2, tzinfo=UTC))


def cache_on(directory: CountingDirectory, clock: ManualClock) -> TargetCache:
    return TargetCache(directory, directory, directory.secrets, clock)


async def test_concurrent_misses_share_one_read_and_the_ttl_bounds_an_entry() -> None:
    directory, clock = CountingDirectory(), ManualClock(datetime(2026, 3, 1, tzinfo=UTC))
    cache = cache_on(directory, clock)
    directory.gate.clear()
    waiters = [asyncio.ensure_future(cache.targets("tenant_1")) for _ in range(50)]
    await asyncio.sleep(0)
    directory.gate.set()
    await asyncio.gather(*waiters)
    assert directory.reads == 1
    await cache.targets("tenant_1")
    clock.advance(0.99)
    await cache.targets("tenant_1")
    assert directory.reads == 1
    clock.advance(0.02)
    await cache.targets("tenant_1")
    assert directory.reads == 2


async def test_a_read_overtaken_by_an_invalidation_is_not_kept() -> None:
    directory, clock = CountingDirectory(), ManualClock(datetime(2026, 3, 1, tzinfo=UTC))
    cache = cache_on(directory, clock)
    directory.gate.clear()
    stale = asyncio.ensure_future(cache.targets("tenant_1"))
    for _ in range(10):  # until the read is under way
        await asyncio.sleep(0)
    assert directory.reads == 1
    cache.invalidate("tenant_1")  # a trigger was added while the read ran
    directory.gate.set()
    await stale
    assert not cache.known_empty("tenant_1")
    await cache.targets("tenant_1")
    assert directory.reads == 2 and cache.known_empty("tenant_1")


async def test_secrets_are_cached_and_a_lapsed_previous_secret_is_dropped() -> None:
    directory, clock = CountingDirectory(), ManualClock(datetime(2026, 3, 1, 23, 59, 59, 500000, tzinfo=UTC))
    cache = cache_on(directory, clock)
    first = await cache.secrets("tenant_1", "app_1")
    assert first is not None and first.previous_secret == "whsec_old"
    clock.advance(0.6)  # past the previous secret's end, inside the TTL
    again = await cache.secrets("tenant_1", "app_1")
    assert directory.secret_reads == 1
    assert again is not None and (again.webhook_secret, again.previous_secret) == ("whsec_new", None)
    cache.invalidate("tenant_1")
    await cache.secrets("tenant_1", "app_1")
    assert directory.secret_reads == 2


async def test_concurrent_deliveries_share_one_secrets_read() -> None:
    directory, clock = CountingDirectory(), ManualClock(datetime(2026, 3, 1, tzinfo=UTC))
    cache = cache_on(directory, clock)
    directory.gate.clear()
    waiters = [asyncio.ensure_future(cache.secrets("tenant_1", "app_1")) for _ in range(50)]
    await asyncio.sleep(0)
    directory.gate.set()
    assert all(s is not None and s.webhook_secret == "whsec_new" for s in await asyncio.gather(*waiters))
    assert directory.secret_reads == 1
