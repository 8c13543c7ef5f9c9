"""Power Automate triggers (api.md §8): subscribe, unsubscribe, validation, tenant isolation."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from gravity_sms.domain.clock import ManualClock
from gravity_sms.settings import Settings
from tests.conftest import Actor, FakeResolver, client_for

PATH = "/v1/triggers/sms-received/subscribe"


async def subscribe(client: httpx.AsyncClient, actor: Actor, **body: Any) -> httpx.Response:
    return await client.post(PATH, json=body, headers=actor.headers)


async def test_subscribe_and_unsubscribe(client: httpx.AsyncClient, gateway: Any, tenant_a: Actor) -> None:
    r = await subscribe(client, tenant_a, callbackUrl="https://flow.example.com/hook", phoneNumber="+15559876543")
    assert r.status_code == 201
    trigger_id = r.json()["id"]
    assert r.json() == {"id": trigger_id}
    assert trigger_id.startswith("trg_") and len(trigger_id) == 20
    assert r.headers["location"] == f"{PATH}/{trigger_id}"
    (stored,) = await gateway.store.triggers.for_tenant(tenant_a.tenant_id)
    assert (stored.phone_number, stored.app_id) == ("+15559876543", tenant_a.app_id)

    r = await client.delete(f"{PATH}/{trigger_id}", headers=tenant_a.headers)
    assert (r.status_code, r.json()) == (200, {"ok": True})
    assert await gateway.store.triggers.for_tenant(tenant_a.tenant_id) == []
    r = await client.delete(f"{PATH}/{trigger_id}", headers=tenant_a.headers)
    assert (r.status_code, r.json()) == (404, {"error": "Trigger not found"})


async def test_x_api_key_header_works(client: httpx.AsyncClient, tenant_a: Actor) -> None:
    r = await client.post(PATH, json={"callbackUrl": "https://flow.example.com/h"}, headers={"X-API-Key": tenant_a.key})
    assert r.status_code == 201


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"callbackUrl": None},
        {"callbackUrl": 42},
        {"callbackUrl": "ftp://flow.example.com/h"},
        {"callbackUrl": "not a url"},
        {"callbackUrl": "https://" + "a" * 2000 + ".com"},
    ],
)
async def test_bad_callback_url(client: httpx.AsyncClient, gateway: Any, tenant_a: Actor, body: Any) -> None:
    r = await client.post(PATH, json=body, headers=tenant_a.headers)
    assert (r.status_code, r.json()) == (400, {"error": "Invalid callback URL"})
    assert await gateway.store.triggers.for_tenant(tenant_a.tenant_id) == []


@pytest.mark.parametrize("phone", ["5559876543", "+0123456789", 15559876543, "", "+1555"])
async def test_bad_phone_number(client: httpx.AsyncClient, tenant_a: Actor, phone: Any) -> None:
    r = await subscribe(client, tenant_a, callbackUrl="https://flow.example.com/h", phoneNumber=phone)
    assert (r.status_code, r.json()) == (400, {"error": "phoneNumber must be a valid E.164 phone number"})


async def test_bad_json_body(client: httpx.AsyncClient, tenant_a: Actor) -> None:
    r = await client.post(PATH, content=b"{oops", headers=tenant_a.headers)
    assert (r.status_code, r.json()) == (400, {"error": "Invalid JSON body"})


async def test_private_callback_refused_when_blocking(
    settings: Settings, clock: ManualClock, database: Any, tenant_a: Actor
) -> None:
    async with client_for(settings, clock, database, resolver=FakeResolver(), block_private_webhooks=True) as (_, c):
        for url in ("http://127.0.0.1/h", "http://internal.example.com/h", "http://rebind.example.com/h"):
            r = await c.post(PATH, json={"callbackUrl": url}, headers=tenant_a.headers)
            assert (r.status_code, r.json()) == (400, {"error": "Invalid callback URL"}), url
        r = await c.post(PATH, json={"callbackUrl": "https://hooks.example.com/h"}, headers=tenant_a.headers)
        assert r.status_code == 201


async def test_another_tenants_trigger_is_not_found(
    client: httpx.AsyncClient, gateway: Any, tenant_a: Actor, tenant_b: Actor, admin: Actor
) -> None:
    trigger_id = (await subscribe(client, tenant_a, callbackUrl="https://flow.example.com/h")).json()["id"]
    r = await client.delete(f"{PATH}/{trigger_id}", headers=tenant_b.headers)
    assert (r.status_code, r.json()) == (404, {"error": "Trigger not found"})
    assert len(await gateway.store.triggers.for_tenant(tenant_a.tenant_id)) == 1
    r = await client.delete(f"{PATH}/trg_nope", headers=tenant_b.headers)
    assert (r.status_code, r.json()) == (404, {"error": "Trigger not found"})
    r = await client.delete(f"{PATH}/{trigger_id}", headers=admin.headers)
    assert r.status_code == 200


async def test_authentication_required(client: httpx.AsyncClient) -> None:
    r = await client.post(PATH, json={"callbackUrl": "https://flow.example.com/h"})
    assert (r.status_code, r.json()) == (401, {"error": "Missing or invalid API key"})
