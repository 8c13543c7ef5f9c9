"""HTTP conventions of api.md §1: error shape, request id, security headers, body limit, HTTPS,
generic errors, and the health, readiness and metrics endpoints (§2)."""

from __future__ import annotations

import base64
import json
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from gravity_sms.api.middleware import GatewayMiddleware
from gravity_sms.domain.clock import ManualClock
from gravity_sms.runtime import Runtime, build_gateway
from gravity_sms.settings import Settings
from gravity_sms.store import Database
from tests.conftest import Actor, client_for

SECURITY_HEADERS = {
    "strict-transport-security": "max-age=31536000; includeSubDomains",
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "x-xss-protection": "0",
    "content-security-policy": "default-src 'none'",
    "referrer-policy": "no-referrer",
}


def assert_conventions(r: httpx.Response) -> None:
    for name, value in SECURITY_HEADERS.items():
        assert r.headers.get(name) == value, name
    assert r.headers.get("x-request-id")


def assert_error(r: httpx.Response, status: int, message: str) -> None:
    assert r.status_code == status, r.text
    assert r.json() == {"error": message}
    assert r.headers["content-type"].startswith("application/json")
    assert_conventions(r)


@pytest.mark.parametrize(
    ("method", "path", "status", "message"),
    [
        ("GET", "/nope", 404, "Not found"),
        ("GET", "/v1", 404, "Not found"),
        ("POST", "/v1/does-not-exist", 404, "Not found"),
        ("GET", "/v1/apps/app_0123456789abcdef/rotate-key", 405, "Method not allowed"),
        ("POST", "/health", 405, "Method not allowed"),
        ("DELETE", "/v1/tenants", 405, "Method not allowed"),
        ("PATCH", "/v1/apps/app_0123456789abcdef", 405, "Method not allowed"),
    ],
)
async def test_generic_errors(client: httpx.AsyncClient, method: str, path: str, status: int, message: str) -> None:
    assert_error(await client.request(method, path), status, message)


@pytest.mark.parametrize(
    "body",
    [b"", b"{", b"not json", b"[1, 2]", b'"a string"', b"42", b"null", b"\xff\xfe", b'{"name": "x"} trailing'],
)
async def test_invalid_json_body(client: httpx.AsyncClient, admin: Actor, body: bytes) -> None:
    r = await client.post("/v1/tenants", content=body, headers={**admin.headers, "content-type": "application/json"})
    assert_error(r, 400, "Invalid JSON body")


async def test_request_id_is_a_uuid_or_the_callers_sane_id(client: httpx.AsyncClient) -> None:
    r = await client.get("/health")
    assert uuid.UUID(r.headers["x-request-id"])
    other = await client.get("/health")
    assert other.headers["x-request-id"] != r.headers["x-request-id"]
    sane = "req-42.abc:DEF_" + "x" * 113
    assert len(sane) == 128
    assert (await client.get("/health", headers={"X-Request-Id": sane})).headers["x-request-id"] == sane
    for bad in ["x" * 129, "has space", "semi;colon", "<script>", ""]:
        echoed = (await client.get("/nope", headers={"X-Request-Id": bad})).headers["x-request-id"]
        assert echoed != bad and uuid.UUID(echoed)


async def test_security_headers_on_success_and_error_and_authenticated(client: httpx.AsyncClient, admin: Actor) -> None:
    for r in [
        await client.get("/health"),
        await client.get("/nope"),
        await client.get("/v1/tenants"),
        await client.get("/v1/tenants", headers=admin.headers),
        await client.post("/v1/tenants", content=b"x" * 200_000),
    ]:
        assert_conventions(r)


async def test_body_over_100_kb_with_content_length(client: httpx.AsyncClient, admin: Actor) -> None:
    ok = json.dumps({"name": "a" * 50, "pad": "x" * (100 * 1024 - 100)}).encode()
    assert len(ok) <= 100 * 1024
    assert (await client.post("/v1/tenants", content=ok, headers=admin.headers)).status_code == 201
    r = await client.post("/v1/tenants", content=b"x" * (100 * 1024 + 1), headers=admin.headers)
    assert_error(r, 413, "Payload too large")


async def test_body_over_100_kb_chunked(client: httpx.AsyncClient, admin: Actor) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(200):
            yield b"x" * 1024

    r = await client.post("/v1/tenants", content=chunks(), headers=admin.headers)
    assert "content-length" not in r.request.headers
    assert_error(r, 413, "Payload too large")


async def _drive(app: Any, headers: list[tuple[bytes, bytes]], chunks: int) -> tuple[int, int]:
    """Run one request through the middleware; return (status, chunks the app pulled)."""
    pulled = 0
    status = 0

    async def receive() -> dict[str, Any]:
        nonlocal pulled
        pulled += 1
        return {"type": "http.request", "body": b"x" * 1024, "more_body": pulled < chunks}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    scope = {"type": "http", "method": "POST", "path": "/x", "headers": headers}
    await GatewayMiddleware(app)(scope, receive, send)
    return status, pulled


async def test_413_stops_reading_without_buffering_the_rest() -> None:
    async def reads_everything(scope: Any, receive: Any, send: Any) -> None:
        while (await receive()).get("more_body"):
            pass
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    # Chunked: the middleware gives up right after the chunk that crosses 100 KB.
    status, pulled = await _drive(reads_everything, [], chunks=1000)
    assert (status, pulled) == (413, 101)
    # Declared too large: refused before a single byte is read.
    status, pulled = await _drive(reads_everything, [(b"content-length", str(1000 * 1024).encode())], chunks=1000)
    assert (status, pulled) == (413, 0)
    # Small bodies pass through.
    assert await _drive(reads_everything, [], chunks=100) == (200, 100)


async def test_production_requires_https_behind_the_proxy(
    settings: Settings, clock: ManualClock, database: Database
) -> None:
    key = base64.b64encode(b"k" * 32).decode()
    async with client_for(settings, clock, database, env="production", encryption_key=key) as (_, c):
        assert_error(await c.get("/health", headers={"X-Forwarded-Proto": "http"}), 403, "HTTPS required")
        assert_error(await c.get("/v1/apps", headers={"X-Forwarded-Proto": "HTTP"}), 403, "HTTPS required")
        assert (await c.get("/health", headers={"X-Forwarded-Proto": "https"})).status_code == 200
        assert (await c.get("/health")).status_code == 200
    # Outside production the header is not checked.
    async with client_for(settings, clock, database) as (_, c):
        assert (await c.get("/health", headers={"X-Forwarded-Proto": "http"})).status_code == 200


async def test_unexpected_failure_is_500_without_details_and_logged_with_request_id(
    client: httpx.AsyncClient, admin: Actor, database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    assert (await client.get("/v1/apps", headers=admin.headers)).status_code == 200  # key now cached
    async with database.engine.begin() as conn:
        await conn.execute(text("DROP TABLE apps CASCADE" if not database.is_sqlite else "DROP TABLE apps"))
    caplog.set_level(logging.ERROR, logger="gravity")
    r = await client.get("/v1/apps", headers={**admin.headers, "X-Request-Id": "trace-500"})
    assert_error(r, 500, "Internal server error")
    assert "Traceback" not in r.text and "apps" not in r.text
    records = [rec for rec in caplog.records if rec.getMessage() == "http.unhandled_error"]
    assert records and records[0].exc_info is not None
    assert caplog.records[-1].__dict__["fields"]["path"] == "/v1/apps"


async def test_health_needs_no_auth_and_no_database(settings: Settings, clock: ManualClock) -> None:
    # Nothing listens on port 1: every query fails at once. (A broken SQLite path would fail too,
    # but aiosqlite's worker thread can outlive the test's loop and be reported in the next test.)
    broken = Database("postgresql://postgres@127.0.0.1:1/none")
    gw = await build_gateway(settings, clock=clock, db=broken)
    transport = httpx.ASGITransport(app=Runtime(gw, workers=False).app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as c:
        r = await c.get("/health")
        assert (r.status_code, r.json()) == (200, {"status": "ok"})
        assert_conventions(r)
        r = await c.get("/ready")
        assert r.status_code == 503
        assert r.json() == {"status": "unavailable", "error": "database unavailable"}
    await broken.dispose()


async def test_ready_when_database_answers(client: httpx.AsyncClient) -> None:
    r = await client.get("/ready")
    assert (r.status_code, r.json()) == (200, {"status": "ready"})


async def test_metrics_prometheus_text_by_route_and_status(client: httpx.AsyncClient, admin: Actor) -> None:
    await client.get("/health")
    await client.get("/v1/apps", headers=admin.headers)
    await client.get("/v1/apps/app_0123456789abcdef", headers=admin.headers)
    await client.get("/nope")
    r = await client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    body = r.text
    assert 'gravity_http_requests_total{method="GET",route="/health",status="200"} 1.0' in body
    assert 'gravity_http_requests_total{method="GET",route="/v1/apps/{app_id}",status="404"} 1.0' in body
    assert 'route="unmatched",status="404"' in body
    assert "gravity_http_request_duration_seconds_bucket" in body
    assert "app_0123456789abcdef" not in body and admin.tenant_id not in body


async def test_metrics_can_be_disabled(settings: Settings, clock: ManualClock, database: Database) -> None:
    async with client_for(settings, clock, database, metrics_enabled=False) as (_, c):
        assert_error(await c.get("/metrics"), 404, "Not found")
