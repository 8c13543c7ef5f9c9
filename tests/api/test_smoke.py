"""First contact: health, conventions, and the admin tenants → apps path."""

from __future__ import annotations

import httpx

from tests.conftest import Actor


async def test_health_has_contract_headers(client: httpx.AsyncClient) -> None:
    r = await client.get("/health")
    assert r.status_code == 200
    assert r.json() == {"status": "ok"}
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["content-security-policy"] == "default-src 'none'"
    assert len(r.headers["x-request-id"]) == 36


async def test_admin_creates_tenant_and_app(client: httpx.AsyncClient, admin: Actor) -> None:
    r = await client.post("/v1/tenants", json={"name": "Acme"}, headers=admin.headers)
    assert r.status_code == 201, r.text
    tenant_id = r.json()["tenantId"]
    r = await client.post("/v1/apps/register", json={"name": "CRM", "tenantId": tenant_id}, headers=admin.headers)
    assert r.status_code == 201, r.text
    key = r.json()["apiKey"]
    r = await client.get("/v1/apps", headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 200
    assert [a["name"] for a in r.json()["apps"]] == ["CRM"]
    assert "x-ratelimit-limit" in r.headers
