"""Authentication, brute-force blocking and per-key rate limits (api.md §1), driven by the clock."""

from __future__ import annotations

import httpx
import pytest

from gravity_sms.domain.clock import ManualClock
from gravity_sms.runtime import Runtime
from gravity_sms.settings import Settings
from gravity_sms.store import Database
from tests.api.test_conventions import assert_error
from tests.conftest import Actor, client_for

UNKNOWN_KEY = "sgw_" + "0" * 32


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({}, "Missing or invalid API key"),
        ({"Authorization": ""}, "Missing or invalid API key"),
        ({"Authorization": "Bearer"}, "Missing or invalid API key"),
        ({"Authorization": "Bearer   "}, "Missing or invalid API key"),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, "Missing or invalid API key"),
        ({"Authorization": UNKNOWN_KEY}, "Missing or invalid API key"),
        ({"X-API-Key": ""}, "Missing or invalid API key"),
        ({"Authorization": f"Bearer {UNKNOWN_KEY}"}, "Invalid API key"),
        ({"Authorization": "Bearer not-a-gateway-key"}, "Invalid API key"),
        ({"X-API-Key": UNKNOWN_KEY}, "Invalid API key"),
    ],
)
async def test_authentication_failures(client: httpx.AsyncClient, headers: dict[str, str], message: str) -> None:
    assert_error(await client.get("/v1/apps", headers=headers), 401, message)


async def test_bearer_and_x_api_key_are_both_accepted(client: httpx.AsyncClient, tenant_a: Actor) -> None:
    assert (await client.get("/v1/apps", headers={"Authorization": f"Bearer {tenant_a.key}"})).status_code == 200
    assert (await client.get("/v1/apps", headers={"Authorization": f"bearer {tenant_a.key}"})).status_code == 200
    assert (await client.get("/v1/apps", headers={"X-API-Key": tenant_a.key})).status_code == 200


async def test_admin_only_routes_refuse_app_keys(client: httpx.AsyncClient, tenant_a: Actor) -> None:
    assert_error(await client.get("/v1/tenants", headers=tenant_a.headers), 403, "Admin API key required")


@pytest.mark.parametrize("status", ["suspended", "inactive"])
async def test_suspended_tenant_is_refused_at_once(
    client: httpx.AsyncClient, admin: Actor, tenant_a: Actor, status: str
) -> None:
    assert (await client.get("/v1/apps", headers=tenant_a.headers)).status_code == 200  # key cached
    r = await client.put(f"/v1/tenants/{tenant_a.tenant_id}", json={"status": status}, headers=admin.headers)
    assert r.status_code == 200
    assert_error(await client.get("/v1/apps", headers=tenant_a.headers), 403, "Tenant suspended or inactive")
    await client.put(f"/v1/tenants/{tenant_a.tenant_id}", json={"status": "active"}, headers=admin.headers)
    assert (await client.get("/v1/apps", headers=tenant_a.headers)).status_code == 200


async def test_last_used_at_is_written_at_most_once_a_minute(
    client: httpx.AsyncClient, gateway: object, tenant_a: Actor, clock: ManualClock
) -> None:
    auth = client._transport.app.state.auth  # type: ignore[attr-defined]
    store = gateway.store.apps  # type: ignore[attr-defined]
    assert (await store.get(tenant_a.app_id)).last_used_at is None
    first = clock.now()
    await client.get("/v1/apps", headers=tenant_a.headers)
    await auth.drain()
    assert (await store.get(tenant_a.app_id)).last_used_at == first
    clock.advance(59)
    await client.get("/v1/apps", headers=tenant_a.headers)
    await auth.drain()
    assert (await store.get(tenant_a.app_id)).last_used_at == first
    clock.advance(1)
    await client.get("/v1/apps", headers=tenant_a.headers)
    await auth.drain()
    assert (await store.get(tenant_a.app_id)).last_used_at == clock.now()
    r = await client.get(f"/v1/apps/{tenant_a.app_id}", headers=tenant_a.headers)
    assert r.json()["lastUsedAt"] == "2026-03-01T12:01:00.000Z"


async def _fail(c: httpx.AsyncClient, times: int, headers: dict[str, str] | None = None) -> None:
    for _ in range(times):
        r = await c.get("/v1/apps", headers=headers or {"Authorization": f"Bearer {UNKNOWN_KEY}"})
        assert r.status_code == 401


async def test_ten_failures_block_the_ip_for_fifteen_minutes_even_with_a_valid_key(
    client: httpx.AsyncClient, tenant_a: Actor, clock: ManualClock
) -> None:
    await _fail(client, 10)
    r = await client.get("/v1/apps", headers=tenant_a.headers)
    assert_error(r, 429, "Too many requests")
    assert r.headers["retry-after"] == "900"
    assert_error(await client.get("/v1/tenants"), 429, "Too many requests")  # without a key too
    clock.advance(600)
    r = await client.get("/v1/apps", headers=tenant_a.headers)
    assert (r.status_code, r.headers["retry-after"]) == (429, "300")
    clock.advance(300)
    assert (await client.get("/v1/apps", headers=tenant_a.headers)).status_code == 200


async def test_failures_older_than_five_minutes_do_not_count(
    client: httpx.AsyncClient, tenant_a: Actor, clock: ManualClock
) -> None:
    await _fail(client, 9)
    clock.advance(301)
    await _fail(client, 9)
    assert (await client.get("/v1/apps", headers=tenant_a.headers)).status_code == 200
    await _fail(client, 1)
    assert (await client.get("/v1/apps", headers=tenant_a.headers)).status_code == 429


async def test_missing_header_does_not_count_toward_blocking(client: httpx.AsyncClient, tenant_a: Actor) -> None:
    await _fail(client, 20, headers={"X-Other": "1"})
    assert (await client.get("/v1/apps", headers=tenant_a.headers)).status_code == 200


async def test_blocking_is_per_client_ip(runtime: Runtime, tenant_a: Actor) -> None:
    def client(ip: str) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=runtime.app, client=(ip, 5555))
        return httpx.AsyncClient(transport=transport, base_url="http://gateway.test")

    async with client("10.0.0.1") as attacker, client("10.0.0.2") as bystander:
        await _fail(attacker, 10)
        assert (await attacker.get("/v1/apps", headers=tenant_a.headers)).status_code == 429
        assert (await bystander.get("/v1/apps", headers=tenant_a.headers)).status_code == 200


@pytest.mark.parametrize("trust_proxy", [True, False])
async def test_trust_proxy_decides_whose_address_counts(
    settings: Settings, clock: ManualClock, database: Database, tenant_a: Actor, trust_proxy: bool
) -> None:
    async with client_for(settings, clock, database, trust_proxy=trust_proxy) as (_, c):
        attacker = {"Authorization": f"Bearer {UNKNOWN_KEY}", "X-Forwarded-For": "1.2.3.4, 203.0.113.9"}
        await _fail(c, 10, headers=attacker)
        # The caller-written first hop never matters: only the proxy's own entry (the last one).
        spoofed = {**tenant_a.headers, "X-Forwarded-For": "5.6.7.8, 203.0.113.9"}
        assert (await c.get("/v1/apps", headers=spoofed)).status_code == 429
        other_client = {**tenant_a.headers, "X-Forwarded-For": "203.0.113.10"}
        expected = 200 if trust_proxy else 429  # without trust, every request is the proxy's address
        assert (await c.get("/v1/apps", headers=other_client)).status_code == expected


async def test_per_key_sliding_window_with_headers(
    client: httpx.AsyncClient, tenant_a: Actor, tenant_b: Actor, clock: ManualClock
) -> None:
    for i in range(100):
        r = await client.get("/v1/apps", headers=tenant_a.headers)
        assert r.status_code == 200
        assert r.headers["x-ratelimit-limit"] == "100"
        assert r.headers["x-ratelimit-remaining"] == str(99 - i)
        assert r.headers["x-ratelimit-reset"] == "60"
        if i == 49:
            clock.advance(0.5)
    r = await client.get("/v1/apps", headers=tenant_a.headers)
    assert_error(r, 429, "Too many requests")
    assert r.headers["retry-after"] == "60"
    assert (r.headers["x-ratelimit-limit"], r.headers["x-ratelimit-remaining"]) == ("100", "0")
    # Another key is not affected.
    assert (await client.get("/v1/apps", headers=tenant_b.headers)).status_code == 200
    clock.advance(59.5)  # the first 50 hits leave the window
    r = await client.get("/v1/apps", headers=tenant_a.headers)
    assert (r.status_code, r.headers["x-ratelimit-remaining"]) == (200, "49")


async def test_admin_limit_and_configurable_limits(
    settings: Settings, clock: ManualClock, database: Database, admin: Actor, tenant_a: Actor
) -> None:
    async with client_for(settings, clock, database) as (_, c):
        r = await c.get("/v1/apps", headers=admin.headers)
        assert r.headers["x-ratelimit-limit"] == "500"
    async with client_for(settings, clock, database, rate_limit_app=3, rate_limit_admin=5) as (_, c):
        for _ in range(3):
            assert (await c.get("/v1/apps", headers=tenant_a.headers)).status_code == 200
        assert (await c.get("/v1/apps", headers=tenant_a.headers)).status_code == 429
        for _ in range(5):
            assert (await c.get("/v1/apps", headers=admin.headers)).status_code == 200
        r = await c.get("/v1/apps", headers=admin.headers)
        assert (r.status_code, r.headers["x-ratelimit-limit"]) == (429, "5")
