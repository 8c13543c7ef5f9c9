"""Tenant isolation over every tenants/apps route (api.md §1 "Roles and tenancy", quality.md §3):
an app key of tenant A gets the not-found answer for every resource of tenant B, cannot list them,
and changes nothing of B's."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.api.test_conventions import assert_error
from tests.conftest import Actor

# (method, path template, body, status, message) for B's resources, called with A's app key.
CASES: list[tuple[str, str, dict[str, Any] | None, int, str]] = [
    ("GET", "/v1/apps/{b_app}", None, 404, "App not found"),
    (
        "PUT",
        "/v1/apps/{b_app}",
        {"name": "hijacked", "webhookUrl": "https://hooks.example.com/x"},
        404,
        "App not found",
    ),
    ("PUT", "/v1/apps/{b_app}", {"webhookUrl": None}, 404, "App not found"),
    ("DELETE", "/v1/apps/{b_app}", None, 404, "App not found"),
    ("POST", "/v1/apps/{b_app}/rotate-key", None, 404, "App not found"),
    ("POST", "/v1/apps/{b_app}/rotate-webhook-secret", None, 404, "App not found"),
    (
        "POST",
        "/v1/apps/register",
        {"name": "intruder", "tenantId": "{b_tenant}"},
        400,
        "Tenant not found or not active",
    ),
    # The tenants API is for operators only: an app key learns nothing, whoever's tenant it names.
    ("GET", "/v1/tenants/{b_tenant}", None, 403, "Admin API key required"),
    ("PUT", "/v1/tenants/{b_tenant}", {"status": "suspended"}, 403, "Admin API key required"),
    ("GET", "/v1/tenants", None, 403, "Admin API key required"),
    ("POST", "/v1/tenants", {"name": "x"}, 403, "Admin API key required"),
]


def _fill(value: Any, b: Actor) -> Any:
    if isinstance(value, str):
        return value.format(b_app=b.app_id, b_tenant=b.tenant_id)
    if isinstance(value, dict):
        return {k: _fill(v, b) for k, v in value.items()}
    return value


@pytest.mark.parametrize(("method", "path", "body", "status", "message"), CASES)
async def test_tenant_a_cannot_reach_tenant_b(
    client: httpx.AsyncClient,
    admin: Actor,
    tenant_a: Actor,
    tenant_b: Actor,
    method: str,
    path: str,
    body: dict[str, Any] | None,
    status: int,
    message: str,
) -> None:
    before = (await client.get(f"/v1/apps/{tenant_b.app_id}", headers=admin.headers)).json()
    kwargs: dict[str, Any] = {"json": _fill(body, tenant_b)} if body is not None else {}
    r = await client.request(method, _fill(path, tenant_b), headers=tenant_a.headers, **kwargs)
    assert_error(r, status, message)
    # B is untouched: same record, same tenant status, its key still works.
    assert (await client.get(f"/v1/apps/{tenant_b.app_id}", headers=admin.headers)).json() == before
    assert (await client.get(f"/v1/tenants/{tenant_b.tenant_id}", headers=admin.headers)).json()["status"] == "active"
    assert (await client.get("/v1/apps", headers=tenant_b.headers)).status_code == 200
    apps_of_b = (await client.get(f"/v1/apps?tenantId={tenant_b.tenant_id}", headers=admin.headers)).json()["apps"]
    assert [a["appId"] for a in apps_of_b] == [tenant_b.app_id]


async def test_not_found_for_another_tenant_equals_not_found_for_nothing(
    client: httpx.AsyncClient, tenant_a: Actor, tenant_b: Actor
) -> None:
    """Ids cannot be probed: B's app and an id that exists nowhere answer byte for byte alike."""
    theirs = await client.get(f"/v1/apps/{tenant_b.app_id}", headers=tenant_a.headers)
    nobody = await client.get("/v1/apps/app_ffffffffffffffff", headers=tenant_a.headers)
    assert (theirs.status_code, theirs.content) == (nobody.status_code, nobody.content)


async def test_listing_shows_only_the_own_tenant(
    client: httpx.AsyncClient, admin: Actor, tenant_a: Actor, tenant_b: Actor
) -> None:
    await client.post("/v1/apps/register", json={"name": "B2", "tenantId": tenant_b.tenant_id}, headers=admin.headers)
    for query in ["", f"?tenantId={tenant_b.tenant_id}", f"?tenantId={admin.tenant_id}"]:
        apps = (await client.get(f"/v1/apps{query}", headers=tenant_a.headers)).json()["apps"]
        assert {a["tenantId"] for a in apps} == {tenant_a.tenant_id}
