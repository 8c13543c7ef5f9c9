"""End to end over a real socket: uvicorn on 127.0.0.1 with a free port, httpx as the caller."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import httpx
import pytest
import uvicorn

from gravity_sms.runtime import Runtime
from tests.conftest import Actor


@pytest.fixture
async def server_url(runtime: Runtime) -> AsyncIterator[str]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(runtime.app, lifespan="on", log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    async with asyncio.timeout(10):  # bounded wait for the listener
        while not server.started:
            await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        async with asyncio.timeout(10):
            await task
        sock.close()


async def test_operator_bootstraps_a_tenant_and_its_app_over_http(server_url: str, admin: Actor) -> None:
    async with httpx.AsyncClient(base_url=server_url, timeout=10) as c:
        r = await c.get("/health")
        assert (r.status_code, r.json()) == (200, {"status": "ok"})
        assert r.headers["x-content-type-options"] == "nosniff"
        r = await c.post("/v1/tenants", json={"name": "Acme"}, headers=admin.headers)
        assert r.status_code == 201
        tenant_id = r.json()["tenantId"]
        r = await c.post(
            "/v1/apps/register",
            json={"name": "CRM", "tenantId": tenant_id, "webhookUrl": "https://hooks.example.com/in"},
            headers={"X-API-Key": admin.key, "X-Request-Id": "e2e-1"},
        )
        assert (r.status_code, r.headers["x-request-id"]) == (201, "e2e-1")
        key = r.json()["apiKey"]
        app_id = r.json()["appId"]
        r = await c.get("/v1/apps", headers={"Authorization": f"Bearer {key}"})
        assert [a["appId"] for a in r.json()["apps"]] == [app_id]
        assert r.headers["x-ratelimit-remaining"] == "99"
        r = await c.post(f"/v1/apps/{app_id}/rotate-key", headers={"Authorization": f"Bearer {key}"})
        new_key = r.json()["apiKey"]
        r = await c.get("/v1/apps", headers={"Authorization": f"Bearer {key}"})
        assert (r.status_code, r.json()) == (401, {"error": "Invalid API key"})
        assert (await c.get(f"/v1/apps/{app_id}", headers={"Authorization": f"Bearer {new_key}"})).status_code == 200
        r = await c.get("/ready")
        assert (r.status_code, r.json()) == (200, {"status": "ready"})


async def test_oversized_bodies_over_a_real_socket(server_url: str, admin: Actor) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(300):
            yield b"x" * 1024

    async with httpx.AsyncClient(base_url=server_url, timeout=10) as c:
        r = await c.post("/v1/tenants", content=b"x" * 200_000, headers=admin.headers)
        assert (r.status_code, r.json()) == (413, {"error": "Payload too large"})
        try:
            r = await c.post("/v1/tenants", content=chunks(), headers=admin.headers)
        except httpx.RemoteProtocolError:
            pytest.fail("the server must answer 413, not drop the connection")
        assert (r.status_code, r.json()) == (413, {"error": "Payload too large"})
        r = await c.post("/v1/tenants", content=b"{", headers=admin.headers)
        assert (r.status_code, r.json()) == (400, {"error": "Invalid JSON body"})
        r = await c.put("/health")
        assert (r.status_code, r.json()) == (405, {"error": "Method not allowed"})
