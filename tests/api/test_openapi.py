"""`/openapi.json`: a valid OpenAPI 3.1 document that names every route and matches behaviour."""

from __future__ import annotations

import re

import httpx
import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate
from starlette.routing import Route, WebSocketRoute

from gravity_sms.api.app import all_routes
from gravity_sms.api.openapi import build_openapi
from tests.conftest import Actor

DOC = build_openapi()
METHODS = {"get", "put", "post", "delete", "patch"}


def _shape(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "{}", path)


def registered() -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    for route in all_routes():
        if isinstance(route, Route):
            for method in route.methods or ():
                if method != "HEAD":
                    found.add((method, _shape(route.path)))
    return found


def documented() -> set[tuple[str, str]]:
    return {(m.upper(), _shape(p)) for p, item in DOC["paths"].items() for m in item if m in METHODS}


def test_document_is_valid_openapi_3_1() -> None:
    assert DOC["openapi"].startswith("3.1")
    validate(DOC)


def test_every_registered_route_is_documented() -> None:
    missing = registered() - documented()
    assert not missing, f"routes without documentation: {sorted(missing)}"


def test_websocket_route_is_described() -> None:
    ws_paths = {r.path for r in all_routes() if isinstance(r, WebSocketRoute)}
    assert ws_paths <= {DOC["x-websocket"]["path"]}
    assert "auth_error" in DOC["x-websocket"]["description"]


def test_every_documented_route_exists() -> None:
    missing = documented() - registered()
    assert not missing, f"documented but not registered: {sorted(missing)}"


def test_every_operation_documents_the_error_shape_and_security() -> None:
    for path, item in DOC["paths"].items():
        for method, op in item.items():
            if method not in METHODS:
                continue
            for status, response in op["responses"].items():
                assert "X-Request-Id" in response.get("headers", {}), (method, path, status)
                if status.startswith(("4", "5")) and JSON in response.get("content", {}):
                    schema = response["content"][JSON]["schema"]
                    assert schema == {"$ref": "#/components/schemas/Error"} or path == "/ready", (method, path)
            if op.get("security") != []:
                assert {"401", "403", "429"} <= set(op["responses"]), (method, path)


JSON = "application/json"


class Contract:
    """Validates real responses against the documented response for their status."""

    def __init__(self) -> None:
        self.checked: list[tuple[str, str, int]] = []

    def check(self, method: str, template: str, r: httpx.Response) -> None:
        op = DOC["paths"][template][method.lower()]
        response = op["responses"].get(str(r.status_code))
        assert response is not None, f"{method} {template}: status {r.status_code} is not documented"
        content = response.get("content", {})
        media = r.headers.get("content-type", "").split(";")[0]
        if content and r.content:
            assert media in content, f"{method} {template} {r.status_code}: {media} is not documented"
        if media == JSON:
            assert JSON in content, f"{method} {template} {r.status_code}: JSON answer, none documented"
            schema = {**content[JSON]["schema"], "components": DOC["components"]}
            errors = sorted(Draft202012Validator(schema).iter_errors(r.json()), key=str)
            assert not errors, f"{method} {template} {r.status_code}: {errors[0].message}"
            examples = content[JSON].get("examples")
            if examples and r.status_code >= 400:
                assert r.json() in [e["value"] for e in examples.values()], (method, template, r.json())
        for name in response.get("headers", {}):
            if name == "X-Request-Id" or (name.startswith("X-RateLimit") and r.status_code < 300):
                assert name.lower() in r.headers, (method, template, r.status_code, name)
        self.checked.append((method, template, r.status_code))


@pytest.fixture
def contract() -> Contract:
    return Contract()


async def test_served_without_auth(client: httpx.AsyncClient) -> None:
    r = await client.get("/openapi.json")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith(JSON)
    assert r.json() == DOC


async def test_real_answers_match_the_document(
    client: httpx.AsyncClient, admin: Actor, tenant_a: Actor, tenant_b: Actor, contract: Contract
) -> None:
    c, ok = contract.check, admin.headers
    c("GET", "/health", await client.get("/health"))
    c("GET", "/ready", await client.get("/ready"))
    c("GET", "/metrics", await client.get("/metrics"))
    r = await client.post("/v1/tenants", json={"name": "Doc"}, headers=ok)
    c("POST", "/v1/tenants", r)
    tenant_id = r.json()["tenantId"]
    c("POST", "/v1/tenants", await client.post("/v1/tenants", json={"name": ""}, headers=ok))
    c("POST", "/v1/tenants", await client.post("/v1/tenants", content=b"[", headers=ok))
    c("POST", "/v1/tenants", await client.post("/v1/tenants", content=b"x" * 200_000, headers=ok))
    c("POST", "/v1/tenants", await client.post("/v1/tenants", json={"name": "x"}, headers=tenant_a.headers))
    c("GET", "/v1/tenants", await client.get("/v1/tenants", headers=ok))
    c("GET", "/v1/tenants", await client.get("/v1/tenants"))
    c("GET", "/v1/tenants/{tenantId}", await client.get(f"/v1/tenants/{tenant_id}", headers=ok))
    c("GET", "/v1/tenants/{tenantId}", await client.get("/v1/tenants/tenant_ffffffffffffffff", headers=ok))
    c("GET", "/v1/tenants/{tenantId}", await client.get("/v1/tenants/bad", headers=ok))
    c("PUT", "/v1/tenants/{tenantId}", await client.put(f"/v1/tenants/{tenant_id}", json={"status": "x"}, headers=ok))
    c("PUT", "/v1/tenants/{tenantId}", await client.put(f"/v1/tenants/{tenant_id}", json={"name": "D"}, headers=ok))

    body = {"name": "Doc app", "tenantId": tenant_id, "webhookUrl": "https://hooks.example.com/d"}
    r = await client.post("/v1/apps/register", json=body, headers=ok)
    c("POST", "/v1/apps/register", r)
    app_id = r.json()["appId"]
    for bad in [{"name": "x"}, {"name": "x", "tenantId": "nope"}, {**body, "webhookUrl": "ftp://x"}]:
        c("POST", "/v1/apps/register", await client.post("/v1/apps/register", json=bad, headers=ok))
    admin_role = {"name": "x", "tenantId": tenant_a.tenant_id, "role": "admin"}
    c("POST", "/v1/apps/register", await client.post("/v1/apps/register", json=admin_role, headers=tenant_a.headers))
    c("GET", "/v1/apps", await client.get("/v1/apps", headers=ok))
    c("GET", "/v1/apps", await client.get("/v1/apps?tenantId=bad", headers=ok))
    c("GET", "/v1/apps/{appId}", await client.get(f"/v1/apps/{app_id}", headers=ok))
    c("GET", "/v1/apps/{appId}", await client.get(f"/v1/apps/{app_id}", headers=tenant_b.headers))
    c("GET", "/v1/apps/{appId}", await client.get("/v1/apps/app_1", headers=ok))
    c("PUT", "/v1/apps/{appId}", await client.put(f"/v1/apps/{app_id}", json={"webhookUrl": None}, headers=ok))
    c("PUT", "/v1/apps/{appId}", await client.put(f"/v1/apps/{app_id}", json={"name": 3}, headers=ok))
    c(
        "POST",
        "/v1/apps/{appId}/rotate-webhook-secret",
        await client.post(f"/v1/apps/{app_id}/rotate-webhook-secret", headers=ok),
    )
    c("POST", "/v1/apps/{appId}/rotate-key", await client.post(f"/v1/apps/{app_id}/rotate-key", headers=ok))
    c("DELETE", "/v1/apps/{appId}", await client.delete(f"/v1/apps/{app_id}", headers=ok))
    c("DELETE", "/v1/apps/{appId}", await client.delete(f"/v1/apps/{app_id}", headers=ok))
    c("GET", "/v1/apps", await client.get("/v1/apps", headers={"Authorization": "Bearer " + "sgw_" + "1" * 32}))
    await client.put(f"/v1/tenants/{tenant_b.tenant_id}", json={"status": "suspended"}, headers=ok)
    c("GET", "/v1/apps", await client.get("/v1/apps", headers=tenant_b.headers))
    statuses = {s for _, _, s in contract.checked}
    assert {200, 201, 400, 401, 403, 404, 413} <= statuses


async def test_rate_limited_answer_matches_the_document(
    client: httpx.AsyncClient, tenant_a: Actor, contract: Contract
) -> None:
    for _ in range(100):
        await client.get("/v1/apps", headers=tenant_a.headers)
    r = await client.get("/v1/apps", headers=tenant_a.headers)
    assert r.status_code == 429
    contract.check("GET", "/v1/apps", r)
    assert "retry-after" in r.headers


async def test_oauth_callback_answers_match_the_document(client: httpx.AsyncClient, contract: Contract) -> None:
    """The browser-facing callback answers JSON errors, and an HTML page for RingCentral's `error`."""
    for query in ["", "?code=x", "?code=x&state=y", "?error=access_denied", "?error=access_denied&format=json"]:
        contract.check("GET", "/v1/rc/callback", await client.get("/v1/rc/callback" + query))
    assert {status for _, _, status in contract.checked} == {400}
