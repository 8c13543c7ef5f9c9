"""Tenants API (admin only, api.md §3)."""

from __future__ import annotations

import re

import httpx
import pytest

from gravity_sms.domain.clock import ManualClock
from tests.api.test_conventions import assert_error
from tests.conftest import Actor

TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
UNKNOWN = "tenant_ffffffffffffffff"


async def test_create_get_list(client: httpx.AsyncClient, admin: Actor) -> None:
    r = await client.post("/v1/tenants", json={"name": "Acme", "ignored": True}, headers=admin.headers)
    assert r.status_code == 201
    tenant = r.json()
    assert set(tenant) == {"tenantId", "name", "status", "createdAt", "updatedAt"}
    assert re.match(r"^tenant_[0-9a-f]{16}$", tenant["tenantId"])
    assert (tenant["name"], tenant["status"]) == ("Acme", "active")
    assert TS.match(tenant["createdAt"]) and tenant["createdAt"] == tenant["updatedAt"]
    r = await client.get(f"/v1/tenants/{tenant['tenantId']}", headers=admin.headers)
    assert (r.status_code, r.json()) == (200, tenant)
    r = await client.get("/v1/tenants", headers=admin.headers)
    assert r.status_code == 200
    assert tenant in r.json()["tenants"]
    assert admin.tenant_id in [t["tenantId"] for t in r.json()["tenants"]]


@pytest.mark.parametrize(
    "body",
    [{}, {"name": ""}, {"name": "   "}, {"name": "x" * 101}, {"name": 42}, {"name": None}, {"name": ["Acme"]}],
)
async def test_create_name_rules(client: httpx.AsyncClient, admin: Actor, body: dict[str, object]) -> None:
    assert_error(
        await client.post("/v1/tenants", json=body, headers=admin.headers), 400, "name must be 1-100 characters"
    )


async def test_name_of_100_characters_is_fine(client: httpx.AsyncClient, admin: Actor) -> None:
    assert (await client.post("/v1/tenants", json={"name": "é" * 100}, headers=admin.headers)).status_code == 201


async def test_update(client: httpx.AsyncClient, admin: Actor, tenant_a: Actor, clock: ManualClock) -> None:
    clock.advance(5)
    path = f"/v1/tenants/{tenant_a.tenant_id}"
    r = await client.put(path, json={"name": "Renamed", "unknown": 1}, headers=admin.headers)
    assert r.status_code == 200
    body = r.json()
    assert (body["name"], body["status"], body["updatedAt"]) == ("Renamed", "active", "2026-03-01T12:00:05.000Z")
    assert body["createdAt"] == "2026-03-01T12:00:00.000Z"
    r = await client.put(path, json={"status": "suspended"}, headers=admin.headers)
    assert (r.json()["name"], r.json()["status"]) == ("Renamed", "suspended")
    assert (await client.get(path, headers=admin.headers)).json()["status"] == "suspended"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"status": "deleted"}, "status must be one of active, suspended, inactive"),
        ({"status": None}, "status must be one of active, suspended, inactive"),
        ({"status": 1}, "status must be one of active, suspended, inactive"),
        ({"status": "ACTIVE"}, "status must be one of active, suspended, inactive"),
        ({"name": ""}, "name must be 1-100 characters"),
        ({"name": 7}, "name must be 1-100 characters"),
    ],
)
async def test_update_rules_change_nothing(
    client: httpx.AsyncClient, admin: Actor, tenant_a: Actor, body: dict[str, object], message: str
) -> None:
    path = f"/v1/tenants/{tenant_a.tenant_id}"
    before = (await client.get(path, headers=admin.headers)).json()
    assert_error(
        await client.put(path, json={**body, "name": body.get("name", "Changed")}, headers=admin.headers), 400, message
    )
    assert (await client.get(path, headers=admin.headers)).json() == before


@pytest.mark.parametrize("method", ["GET", "PUT"])
async def test_unknown_and_malformed_ids(client: httpx.AsyncClient, admin: Actor, method: str) -> None:
    body = {"json": {"name": "x"}} if method == "PUT" else {}
    r = await client.request(method, f"/v1/tenants/{UNKNOWN}", headers=admin.headers, **body)  # type: ignore[arg-type]
    assert_error(r, 404, "Tenant not found")
    for bad in ["tenant_XYZ", "tenant_0123456789abcdeF", "app_0123456789abcdef", "%20"]:
        r = await client.request(method, f"/v1/tenants/{bad}", headers=admin.headers, **body)  # type: ignore[arg-type]
        assert_error(r, 400, "Invalid tenantId format")


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/v1/tenants"), ("GET", "/v1/tenants"), ("GET", "/v1/tenants/{t}"), ("PUT", "/v1/tenants/{t}")],
)
async def test_admin_only(client: httpx.AsyncClient, tenant_a: Actor, method: str, path: str) -> None:
    r = await client.request(method, path.format(t=tenant_a.tenant_id), json={"name": "x"}, headers=tenant_a.headers)
    assert_error(r, 403, "Admin API key required")
    assert_error(await client.request(method, path.format(t=tenant_a.tenant_id)), 401, "Missing or invalid API key")


async def test_update_without_changes_keeps_updated_at(
    client: httpx.AsyncClient, admin: Actor, tenant_a: Actor, clock: ManualClock
) -> None:
    path = f"/v1/tenants/{tenant_a.tenant_id}"
    before = (await client.get(path, headers=admin.headers)).json()
    clock.advance(10)
    r = await client.put(path, json={"status": "active", "other": 1}, headers=admin.headers)
    assert (r.status_code, r.json()) == (200, before)
