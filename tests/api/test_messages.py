"""`GET /v1/sms/messages` and `GET /v1/sms/status/{messageId}` (api.md §5): filters, validation,
newest-first stable pagination, admin scope, tenant isolation — on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import insert

from gravity_sms.domain.ids import new_message_id
from gravity_sms.store.tables import messages
from tests.conftest import Actor

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


async def seed(gw: Any, tenant_id: str, n: int, **overrides: Any) -> list[str]:
    """n messages one second apart (the last one newest), plus overrides per row."""
    ids = []
    rows = []
    for i in range(n):
        at = overrides.get("at", T0) + timedelta(seconds=i)
        mid = new_message_id()
        ids.append(mid)
        rows.append(
            {
                "id": mid,
                "tenant_id": tenant_id,
                "direction": overrides.get("direction", "inbound" if i % 2 == 0 else "outbound"),
                "status": overrides.get("status", "received" if i % 2 == 0 else "sent"),
                "from_number": overrides.get("from_number", "+15551234567"),
                "to_number": overrides.get("to_number", "+15559876543"),
                "body": f"message {i}",
                "created_at": at,
                "updated_at": at,
            }
        )
    async with gw.db.write() as c:
        await c.execute(insert(messages), rows)
    return ids


async def listing(client: httpx.AsyncClient, actor: Actor, **params: Any) -> httpx.Response:
    return await client.get("/v1/sms/messages", params=params, headers=actor.headers)


async def test_defaults_newest_first(client: httpx.AsyncClient, gateway: Any, tenant_a: Actor) -> None:
    ids = await seed(gateway, tenant_a.tenant_id, 25)
    r = await listing(client, tenant_a)
    assert r.status_code == 200
    body = r.json()
    assert (body["total"], body["page"], body["limit"]) == (25, 1, 20)
    assert [m["messageId"] for m in body["messages"]] == ids[::-1][:20]
    first = body["messages"][0]
    assert set(first) == {
        "messageId",
        "direction",
        "status",
        "from",
        "to",
        "body",
        "rcMessageId",
        "error",
        "tenantId",
        "appId",
        "userId",
        "createdAt",
        "updatedAt",
    }
    assert first["createdAt"] == "2026-03-01T12:00:24.000Z"


async def test_pages_are_stable_when_timestamps_tie(client: httpx.AsyncClient, gateway: Any, tenant_a: Actor) -> None:
    ids: list[str] = []
    for _ in range(3):
        ids += await seed(gateway, tenant_a.tenant_id, 1, at=T0)  # every row at the same instant
    ids += await seed(gateway, tenant_a.tenant_id, 4, at=T0)
    seen = []
    for page in (1, 2, 3, 4):
        body = (await listing(client, tenant_a, page=page, limit=2)).json()
        assert body["total"] == 7
        seen += [m["messageId"] for m in body["messages"]]
    ordered_by_time_then_id = sorted(
        zip(ids, [0, 0, 0, 0, 1, 2, 3], strict=True), key=lambda p: (p[1], p[0]), reverse=True
    )
    assert seen == [p[0] for p in ordered_by_time_then_id]
    assert len(set(seen)) == 7  # every id listed exactly once across pages


async def test_filters(client: httpx.AsyncClient, gateway: Any, tenant_a: Actor) -> None:
    await seed(gateway, tenant_a.tenant_id, 10)
    special = await seed(
        gateway,
        tenant_a.tenant_id,
        2,
        at=T0 + timedelta(hours=1),
        direction="outbound",
        status="failed",
        from_number="+15550001111",
        to_number="+15550002222",
    )
    cases: list[tuple[dict[str, Any], int]] = [
        ({"direction": "inbound"}, 5),
        ({"direction": "outbound"}, 7),
        ({"status": "sent"}, 5),
        ({"status": "failed"}, 2),
        ({"from": "+15550001111"}, 2),
        ({"to": "+15550002222"}, 2),
        ({"to": "+15559876543", "direction": "inbound"}, 5),
        ({"startDate": "2026-03-01T12:00:05.000Z"}, 7),
        ({"endDate": "2026-03-01T12:00:05.000Z"}, 6),  # inclusive
        ({"startDate": "2026-03-01T12:00:02Z", "endDate": "2026-03-01T12:00:03Z"}, 2),
        ({"startDate": "2026-03-01T13:00:00+00:00"}, 2),
        ({"endDate": "2026-03-01"}, 12),  # a date alone covers the whole day
        ({"endDate": "2026-02-28"}, 0),
    ]
    for params, expected in cases:
        r = await listing(client, tenant_a, **params)
        assert r.status_code == 200, (params, r.text)
        assert r.json()["total"] == expected, params
    r = await listing(client, tenant_a, status="failed")
    assert {m["messageId"] for m in r.json()["messages"]} == set(special)


async def test_unencoded_plus_in_numbers_is_understood(
    client: httpx.AsyncClient, gateway: Any, tenant_a: Actor
) -> None:
    await seed(gateway, tenant_a.tenant_id, 3)
    r = await client.get("/v1/sms/messages?from=+15551234567", headers=tenant_a.headers)
    assert r.status_code == 200 and r.json()["total"] == 3


@pytest.mark.parametrize(
    ("param", "value"),
    [
        ("direction", "sideways"),
        ("status", "lost"),
        ("from", "12345"),
        ("to", "+0123456789"),
        ("startDate", "yesterday"),
        ("endDate", "2026-13-01"),
        ("page", "0"),
        ("page", "-1"),
        ("page", "abc"),
        ("limit", "0"),
        ("limit", "101"),
        ("limit", "1.5"),
    ],
)
async def test_bad_values_name_the_parameter(
    client: httpx.AsyncClient, tenant_a: Actor, param: str, value: str
) -> None:
    r = await listing(client, tenant_a, **{param: value})
    assert r.status_code == 400
    assert r.json() == {"error": f"{param} is invalid"}


async def test_tenant_isolation_and_admin_scope(
    client: httpx.AsyncClient, gateway: Any, tenant_a: Actor, tenant_b: Actor, admin: Actor
) -> None:
    a_ids = await seed(gateway, tenant_a.tenant_id, 3)
    b_ids = await seed(gateway, tenant_b.tenant_id, 2)
    body = (await listing(client, tenant_a)).json()
    assert {m["messageId"] for m in body["messages"]} == set(a_ids)
    # an app key cannot widen its scope with tenantId
    body = (await listing(client, tenant_a, tenantId=tenant_b.tenant_id)).json()
    assert {m["messageId"] for m in body["messages"]} == set(a_ids)
    assert (await listing(client, admin)).json()["total"] == 5
    body = (await listing(client, admin, tenantId=tenant_b.tenant_id)).json()
    assert {m["messageId"] for m in body["messages"]} == set(b_ids)
    r = await listing(client, admin, tenantId="acme")
    assert (r.status_code, r.json()) == (400, {"error": "tenantId is invalid"})

    own = await client.get(f"/v1/sms/status/{a_ids[0]}", headers=tenant_a.headers)
    assert own.status_code == 200 and own.json()["messageId"] == a_ids[0]
    other = await client.get(f"/v1/sms/status/{b_ids[0]}", headers=tenant_a.headers)
    assert (other.status_code, other.json()) == (404, {"error": "Message not found"})
    as_admin = await client.get(f"/v1/sms/status/{b_ids[0]}", headers=admin.headers)
    assert as_admin.status_code == 200 and as_admin.json()["tenantId"] == tenant_b.tenant_id


async def test_status_errors(client: httpx.AsyncClient, tenant_a: Actor) -> None:
    r = await client.get("/v1/sms/status/not-an-id", headers=tenant_a.headers)
    assert (r.status_code, r.json()) == (400, {"error": "Invalid messageId format"})
    r = await client.get("/v1/sms/status/msg_000000000001", headers=tenant_a.headers)
    assert (r.status_code, r.json()) == (404, {"error": "Message not found"})


async def test_authentication_required(client: httpx.AsyncClient) -> None:
    r = await client.get("/v1/sms/messages")
    assert (r.status_code, r.json()) == (401, {"error": "Missing or invalid API key"})
