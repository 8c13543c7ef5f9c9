"""The hot routes' short way (quality.md B1/B2): the pure-ASGI endpoints answer exactly as the
ordinary stack would, the inbound route cache never outlives a change, and the group-commit
writers store what they acknowledge."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from sqlalchemy import func, select, update

from gravity_sms.domain.clock import ManualClock
from gravity_sms.store.tables import messages, rc_extensions, rc_subscriptions, tenants
from tests.api.test_conventions import assert_conventions, assert_error
from tests.conftest import Actor
from tests.inbound_support import WEBHOOK, connect_tenant, encode, sms_event

OK = {"to": "+15551234567", "from": "+15559876543", "body": "Hello"}


async def count(gw: Any, direction: str) -> int:
    async with gw.db.read() as c:
        query = select(func.count()).select_from(messages).where(messages.c.direction == direction)
        return int((await c.execute(query)).scalar_one())


async def test_send_answers_carry_every_convention(client: httpx.AsyncClient, tenant_a: Actor) -> None:
    r = await client.post("/v1/sms/send", json=OK, headers={**tenant_a.headers, "X-Request-Id": "req-1"})
    assert r.status_code == 202
    assert_conventions(r)
    assert r.headers["x-request-id"] == "req-1"
    assert r.headers["content-type"] == "application/json"
    assert {"x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset"} <= set(r.headers)
    bad = await client.post("/v1/sms/send", json={}, headers=tenant_a.headers)
    assert_error(bad, 400, "to, from, and body are required")
    assert "x-ratelimit-remaining" in bad.headers  # counted before validation, as on every route
    assert_error(await client.post("/v1/sms/send", json=OK), 401, "Missing or invalid API key")


async def test_other_methods_on_hot_paths_take_the_ordinary_way(client: httpx.AsyncClient) -> None:
    assert_error(await client.get("/v1/sms/send"), 405, "Method not allowed")
    assert_error(await client.put(WEBHOOK), 405, "Method not allowed")


async def test_hot_route_metrics_are_counted_by_route(client: httpx.AsyncClient, tenant_a: Actor) -> None:
    for _ in range(3):
        assert (await client.post("/v1/sms/send", json=OK, headers=tenant_a.headers)).status_code == 202
    body = (await client.get("/metrics")).text
    assert 'gravity_http_requests_total{method="POST",route="/v1/sms/send",status="202"} 3.0' in body


async def test_request_ids_are_uuids_and_unique(client: httpx.AsyncClient) -> None:
    import uuid

    ids = {(await client.post("/v1/sms/send", json=OK)).headers["x-request-id"] for _ in range(20)}
    assert len(ids) == 20
    for rid in ids:
        assert str(uuid.UUID(rid)) == rid


async def test_concurrent_sends_are_stored_with_their_exact_timestamps(
    client: httpx.AsyncClient, tenant_a: Actor, gateway: Any, clock: ManualClock
) -> None:
    answers = await asyncio.gather(
        *(client.post("/v1/sms/send", json={**OK, "body": f"n{i}"}, headers=tenant_a.headers) for i in range(40))
    )
    assert {r.status_code for r in answers} == {202}
    assert await count(gateway, "outbound") == 40
    stored = await gateway.store.messages.get(answers[0].json()["messageId"])
    assert stored.created_at == clock.now() and stored.created_at.tzinfo is not None


async def test_route_cache_follows_a_suspension(gateway: Any, client: httpx.AsyncClient, tenant_a: Actor) -> None:
    conn = await connect_tenant(gateway.db, tenant_a.tenant_id)
    first = await client.post(WEBHOOK, content=encode(sms_event(conn)), headers=conn.headers)
    assert first.status_code == 200
    assert await count(gateway, "inbound") == 1
    async with gateway.db.write() as c:
        await c.execute(update(tenants).where(tenants.c.id == conn.tenant_id).values(status="suspended"))
    second = await client.post(WEBHOOK, content=encode(sms_event(conn)), headers=conn.headers)
    assert second.status_code == 200
    assert await count(gateway, "inbound") == 1


async def test_route_cache_follows_a_disconnect_and_a_new_token(
    gateway: Any, client: httpx.AsyncClient, tenant_a: Actor
) -> None:
    conn = await connect_tenant(gateway.db, tenant_a.tenant_id)
    assert (await client.post(WEBHOOK, content=encode(sms_event(conn)), headers=conn.headers)).status_code == 200
    async with gateway.db.write() as c:
        await c.execute(update(rc_subscriptions).values(verification_token_hash="0" * 64))
    r = await client.post(WEBHOOK, content=encode(sms_event(conn)), headers=conn.headers)
    assert_error(r, 401, "Invalid verification token")
    async with gateway.db.write() as c:
        await c.execute(update(rc_extensions).values(status="disconnected"))
    assert await count(gateway, "inbound") == 1


async def test_concurrent_events_are_each_stored_once_and_fanned_out(
    gateway: Any, client: httpx.AsyncClient, tenant_a: Actor
) -> None:
    conn = await connect_tenant(gateway.db, tenant_a.tenant_id)
    events = [sms_event(conn, rc_id=str(1000 + i % 10)) for i in range(30)]  # 10 ids, 3 copies each
    answers = await asyncio.gather(*(client.post(WEBHOOK, content=encode(e), headers=conn.headers) for e in events))
    assert {r.status_code for r in answers} == {200}
    assert await count(gateway, "inbound") == 10
    await gateway.dispatcher.run_until_idle()
    async with gateway.db.read() as c:
        pending = (await c.execute(select(func.count()).where(messages.c.fanout_pending))).scalar_one()
    assert pending == 0
