"""Apps API (api.md §4): register, list, get, update, delete, rotate key and webhook secret."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from gravity_sms.domain.clock import ManualClock
from gravity_sms.settings import Settings
from gravity_sms.store import Database
from tests.api.test_conventions import assert_error
from tests.conftest import Actor, client_for

APP_FIELDS = {"appId", "tenantId", "name", "role", "webhookUrl", "apiKeyPrefix", "lastUsedAt", "createdAt", "updatedAt"}
UNKNOWN_APP = "app_ffffffffffffffff"
URL_FORMAT = "Invalid webhookUrl: must be https:// in production, max 2000 chars"
URL_PRIVATE = "Invalid webhookUrl: private or internal addresses are not allowed"


async def register(c: httpx.AsyncClient, caller: Actor, **body: Any) -> httpx.Response:
    return await c.post("/v1/apps/register", json=body, headers=caller.headers)


async def test_register_answers_the_key_and_secret_once(
    client: httpx.AsyncClient, admin: Actor, tenant_a: Actor
) -> None:
    r = await register(
        client, admin, name="CRM", tenantId=tenant_a.tenant_id, webhookUrl="https://hooks.example.com/in"
    )
    assert r.status_code == 201
    body = r.json()
    assert set(body) == {
        "appId",
        "name",
        "apiKey",
        "apiKeyPrefix",
        "webhookSecret",
        "role",
        "tenantId",
        "webhookUrl",
        "createdAt",
    }
    assert re.match(r"^app_[0-9a-f]{16}$", body["appId"])
    assert re.match(r"^sgw_[0-9a-f]{32}$", body["apiKey"]) and body["apiKeyPrefix"] == body["apiKey"][:8]
    assert body["webhookSecret"].startswith("whsec_")
    assert (body["role"], body["tenantId"], body["webhookUrl"]) == (
        "app",
        tenant_a.tenant_id,
        "https://hooks.example.com/in",
    )
    app = (await client.get(f"/v1/apps/{body['appId']}", headers=admin.headers)).json()
    assert set(app) == APP_FIELDS
    assert app["lastUsedAt"] is None and app["createdAt"] == body["createdAt"]
    # The new key works at once.
    r = await client.get("/v1/apps", headers={"X-API-Key": body["apiKey"]})
    assert r.status_code == 200


async def test_app_key_registers_into_its_own_tenant_only(
    client: httpx.AsyncClient, tenant_a: Actor, tenant_b: Actor
) -> None:
    r = await register(client, tenant_a, name="Second", tenantId=tenant_a.tenant_id, role="app")
    assert (r.status_code, r.json()["role"]) == (201, "app")
    assert_error(
        await register(client, tenant_a, name="X", tenantId=tenant_b.tenant_id), 400, "Tenant not found or not active"
    )
    assert_error(
        await register(client, tenant_a, name="X", tenantId=tenant_a.tenant_id, role="admin"),
        403,
        "Admin API key required",
    )


async def test_admin_registers_admins(client: httpx.AsyncClient, admin: Actor, tenant_a: Actor) -> None:
    r = await register(client, admin, name="Ops", tenantId=tenant_a.tenant_id, role="admin")
    assert (r.status_code, r.json()["role"]) == (201, "admin")


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"tenantId": "{a}"}, 400, "name must be 1-100 characters"),
        ({"name": "", "tenantId": "{a}"}, 400, "name must be 1-100 characters"),
        ({"name": "x" * 101, "tenantId": "{a}"}, 400, "name must be 1-100 characters"),
        ({"name": 5, "tenantId": "{a}"}, 400, "name must be 1-100 characters"),
        ({"name": "CRM"}, 400, "tenantId is required when registering new apps"),
        ({"name": "CRM", "tenantId": ""}, 400, "tenantId is required when registering new apps"),
        ({"name": "CRM", "tenantId": None}, 400, "tenantId is required when registering new apps"),
        ({"name": "CRM", "tenantId": "acme"}, 400, "Invalid tenantId format"),
        ({"name": "CRM", "tenantId": 12}, 400, "Invalid tenantId format"),
        ({"name": "CRM", "tenantId": "tenant_ffffffffffffffff"}, 400, "Tenant not found or not active"),
        ({"name": "CRM", "tenantId": "{s}"}, 400, "Tenant not found or not active"),
        ({"name": "CRM", "tenantId": "{a}", "webhookUrl": "ftp://x.example/h"}, 400, URL_FORMAT),
        ({"name": "CRM", "tenantId": "{a}", "webhookUrl": "not a url"}, 400, URL_FORMAT),
        ({"name": "CRM", "tenantId": "{a}", "webhookUrl": 42}, 400, URL_FORMAT),
        ({"name": "CRM", "tenantId": "{a}", "webhookUrl": ""}, 400, URL_FORMAT),
        ({"name": "CRM", "tenantId": "{a}", "webhookUrl": "https://x.example/" + "a" * 2000}, 400, URL_FORMAT),
        ({"name": "CRM", "tenantId": "{a}", "role": "owner"}, 400, "role must be one of app, admin"),
        ({"name": "CRM", "tenantId": "{a}", "role": 1}, 400, "role must be one of app, admin"),
    ],
)
async def test_register_errors_create_nothing(
    client: httpx.AsyncClient,
    admin: Actor,
    tenant_a: Actor,
    gateway: Any,
    body: dict[str, Any],
    status: int,
    message: str,
) -> None:
    suspended = (await gateway.tenants.create("Sleepy")).id
    await gateway.tenants.update(suspended, {"status": "suspended"})
    before = len((await client.get("/v1/apps", headers=admin.headers)).json()["apps"])
    if isinstance(body.get("tenantId"), str):
        body = {**body, "tenantId": body["tenantId"].format(a=tenant_a.tenant_id, s=suspended)}
    assert_error(await client.post("/v1/apps/register", json=body, headers=admin.headers), status, message)
    assert len((await client.get("/v1/apps", headers=admin.headers)).json()["apps"]) == before


async def test_production_webhook_rules(
    settings: Settings, clock: ManualClock, database: Database, gateway: Any
) -> None:
    import base64

    admin_app = await _admin(gateway)
    tenant = (await gateway.tenants.create("Prod")).id
    key = base64.b64encode(b"k" * 32).decode()
    async with client_for(settings, clock, database, env="production", encryption_key=key) as (_, c):
        ok = await register(c, admin_app, name="A", tenantId=tenant, webhookUrl="https://hooks.example.com/in")
        assert ok.status_code == 201
        assert_error(
            await register(c, admin_app, name="A", tenantId=tenant, webhookUrl="http://hooks.example.com/in"),
            400,
            URL_FORMAT,
        )
        for url in [
            "https://127.0.0.1/in",
            "https://localhost/in",
            "https://169.254.169.254/latest/meta-data/",
            "https://metadata.google.internal/",
            "https://[fd00:ec2::254]/",
            "https://internal.example.com/in",
            "https://rebind.example.com/in",
            "https://nxdomain.example.com/in",
        ]:
            assert_error(await register(c, admin_app, name="A", tenantId=tenant, webhookUrl=url), 400, URL_PRIVATE)
        # The same rules on update.
        path = f"/v1/apps/{ok.json()['appId']}"
        assert_error(
            await c.put(path, json={"webhookUrl": "https://10.1.1.1/x"}, headers=admin_app.headers), 400, URL_PRIVATE
        )
        assert_error(
            await c.put(path, json={"webhookUrl": "http://hooks.example.com/x"}, headers=admin_app.headers),
            400,
            URL_FORMAT,
        )


async def test_block_private_outside_production(
    settings: Settings, clock: ManualClock, database: Database, gateway: Any
) -> None:
    admin_app = await _admin(gateway)
    tenant = (await gateway.tenants.create("Dev")).id
    async with client_for(settings, clock, database, block_private_webhooks=True) as (_, c):
        r = await register(c, admin_app, name="A", tenantId=tenant, webhookUrl="http://192.168.1.1/x")
        assert_error(r, 400, URL_PRIVATE)
        assert (
            await register(c, admin_app, name="A", tenantId=tenant, webhookUrl="http://hooks.example.com/x")
        ).status_code == 201
    # Default development: local receivers are fine (no DNS is even consulted).
    async with client_for(settings, clock, database) as (_, c):
        assert (
            await register(c, admin_app, name="A", tenantId=tenant, webhookUrl="http://127.0.0.1:9000/x")
        ).status_code == 201


async def _admin(gateway: Any) -> Actor:
    from tests.conftest import make_actor

    return await make_actor(gateway, "Ops", role="admin")


async def test_list_scopes(client: httpx.AsyncClient, admin: Actor, tenant_a: Actor, tenant_b: Actor) -> None:
    second_a = (await register(client, admin, name="A2", tenantId=tenant_a.tenant_id)).json()["appId"]
    r = await client.get("/v1/apps", headers=tenant_a.headers)
    assert {a["appId"] for a in r.json()["apps"]} == {tenant_a.app_id, second_a}
    for a in r.json()["apps"]:
        assert set(a) == APP_FIELDS
    # An app key cannot widen its view with ?tenantId=.
    r = await client.get(f"/v1/apps?tenantId={tenant_b.tenant_id}", headers=tenant_a.headers)
    assert {a["appId"] for a in r.json()["apps"]} == {tenant_a.app_id, second_a}
    everything = {a["appId"] for a in (await client.get("/v1/apps", headers=admin.headers)).json()["apps"]}
    assert {admin.app_id, tenant_a.app_id, second_a, tenant_b.app_id} <= everything
    r = await client.get(f"/v1/apps?tenantId={tenant_b.tenant_id}", headers=admin.headers)
    assert [a["appId"] for a in r.json()["apps"]] == [tenant_b.app_id]
    assert_error(await client.get("/v1/apps?tenantId=nope", headers=admin.headers), 400, "Invalid tenantId format")


async def test_get_update_delete(client: httpx.AsyncClient, tenant_a: Actor, clock: ManualClock) -> None:
    other = (await register(client, tenant_a, name="Other", tenantId=tenant_a.tenant_id)).json()
    path = f"/v1/apps/{other['appId']}"
    clock.advance(1)
    r = await client.put(
        path,
        json={"name": "Renamed", "webhookUrl": "https://hooks.example.com/x", "role": "admin", "apiKey": "x"},
        headers=tenant_a.headers,
    )
    assert r.status_code == 200
    app = r.json()
    assert (app["name"], app["webhookUrl"], app["role"]) == ("Renamed", "https://hooks.example.com/x", "app")
    assert app["updatedAt"] == "2026-03-01T12:00:01.000Z"
    # webhookUrl omitted: unchanged; null: removed.
    r = await client.put(path, json={"name": "Again"}, headers=tenant_a.headers)
    assert r.json()["webhookUrl"] == "https://hooks.example.com/x"
    r = await client.put(path, json={"webhookUrl": None}, headers=tenant_a.headers)
    assert (r.json()["webhookUrl"], r.json()["name"]) == (None, "Again")
    assert (await client.get(path, headers=tenant_a.headers)).json()["webhookUrl"] is None
    assert_error(
        await client.put(path, json={"name": ""}, headers=tenant_a.headers), 400, "name must be 1-100 characters"
    )
    assert_error(await client.put(path, content=b"[]", headers=tenant_a.headers), 400, "Invalid JSON body")

    r = await client.delete(path, headers=tenant_a.headers)
    assert (r.status_code, r.json()) == (200, {"ok": True})
    assert_error(await client.get(path, headers=tenant_a.headers), 404, "App not found")
    assert_error(await client.delete(path, headers=tenant_a.headers), 404, "App not found")
    assert_error(await client.get("/v1/apps", headers={"X-API-Key": other["apiKey"]}), 401, "Invalid API key")


@pytest.mark.parametrize(
    ("method", "suffix"),
    [("GET", ""), ("PUT", ""), ("DELETE", ""), ("POST", "/rotate-key"), ("POST", "/rotate-webhook-secret")],
)
async def test_unknown_and_malformed_app_ids(client: httpx.AsyncClient, admin: Actor, method: str, suffix: str) -> None:
    r = await client.request(method, f"/v1/apps/{UNKNOWN_APP}{suffix}", json={}, headers=admin.headers)
    assert_error(r, 404, "App not found")
    for bad in ["app_123", "APP_0123456789abcdef", "app_0123456789ABCDEF", "tenant_0123456789abcdef"]:
        r = await client.request(method, f"/v1/apps/{bad}{suffix}", json={}, headers=admin.headers)
        assert_error(r, 400, "Invalid appId format")


async def test_deleted_key_is_dead_on_the_next_request(
    client: httpx.AsyncClient, admin: Actor, tenant_a: Actor
) -> None:
    assert (await client.get("/v1/apps", headers=tenant_a.headers)).status_code == 200  # cached
    assert (await client.delete(f"/v1/apps/{tenant_a.app_id}", headers=admin.headers)).status_code == 200
    assert_error(await client.get("/v1/apps", headers=tenant_a.headers), 401, "Invalid API key")


async def test_rotate_key_kills_the_old_key_at_once(client: httpx.AsyncClient, tenant_a: Actor) -> None:
    assert (await client.get("/v1/apps", headers=tenant_a.headers)).status_code == 200  # cached
    r = await client.post(f"/v1/apps/{tenant_a.app_id}/rotate-key", headers=tenant_a.headers)
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {"apiKey", "apiKeyPrefix"} and body["apiKeyPrefix"] == body["apiKey"][:8]
    assert_error(await client.get("/v1/apps", headers=tenant_a.headers), 401, "Invalid API key")
    r = await client.get(f"/v1/apps/{tenant_a.app_id}", headers={"Authorization": f"Bearer {body['apiKey']}"})
    assert (r.status_code, r.json()["apiKeyPrefix"]) == (200, body["apiKeyPrefix"])


async def test_rotate_webhook_secret_keeps_the_old_one_for_24_hours(
    client: httpx.AsyncClient, gateway: Any, tenant_a: Actor, clock: ManualClock
) -> None:
    r = await client.post(f"/v1/apps/{tenant_a.app_id}/rotate-webhook-secret", headers=tenant_a.headers)
    assert r.status_code == 200
    new = r.json()["webhookSecret"]
    assert set(r.json()) == {"webhookSecret"} and new.startswith("whsec_") and new != tenant_a.secret
    secrets = await gateway.apps.signing_secrets(tenant_a.app_id)
    assert (secrets.webhook_secret, secrets.previous_secret) == (new, tenant_a.secret)
    clock.advance(24 * 3600 - 1)
    assert (await gateway.apps.signing_secrets(tenant_a.app_id)).previous_secret == tenant_a.secret
    clock.advance(1)
    assert (await gateway.apps.signing_secrets(tenant_a.app_id)).previous_secret is None


async def test_no_secret_at_rest_or_in_logs(
    client: httpx.AsyncClient,
    admin: Actor,
    tenant_a: Actor,
    database: Database,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    if not database.is_sqlite:
        pytest.skip("scans the raw SQLite file; the PostgreSQL variant stores through the same code")
    caplog.set_level(logging.DEBUG)
    plaintexts = [admin.key, tenant_a.key, tenant_a.secret]
    r = await register(
        client, admin, name="Scan", tenantId=tenant_a.tenant_id, webhookUrl="https://hooks.example.com/s"
    )
    plaintexts += [r.json()["apiKey"], r.json()["webhookSecret"]]
    rotated = await client.post(f"/v1/apps/{tenant_a.app_id}/rotate-key", headers=admin.headers)
    secret = await client.post(f"/v1/apps/{tenant_a.app_id}/rotate-webhook-secret", headers=admin.headers)
    plaintexts += [rotated.json()["apiKey"], secret.json()["webhookSecret"]]
    await client.get("/v1/apps", headers={"Authorization": f"Bearer {rotated.json()['apiKey']}"})
    await client.get("/v1/apps", headers={"Authorization": f"Bearer {tenant_a.key}"})  # a failed, logged attempt
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("gravity.db*"))
    assert len(raw) > 0
    logs = caplog.text
    for value in plaintexts:
        for needle in {value, value.removeprefix("whsec_").removeprefix("sgw_")}:
            assert needle.encode() not in raw, "plaintext secret in the database file"
            assert needle not in logs, "plaintext secret in the logs"
