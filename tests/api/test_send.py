"""`POST /v1/sms/send`: validation order and messages, durable 202, Idempotency-Key (api.md §5)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from gravity_sms.domain.clock import ManualClock
from gravity_sms.store.tables import idempotency_keys, messages
from tests.conftest import Actor

OK = {"to": "+15551234567", "from": "+15559876543", "body": "Hello"}


async def count_messages(gateway: Any) -> int:
    async with gateway.db.read() as conn:
        return int((await conn.execute(select(func.count()).select_from(messages))).scalar_one())


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({}, "to, from, and body are required"),
        ({"from": "+15559876543", "body": "x"}, "to, from, and body are required"),
        ({**OK, "to": ""}, "to, from, and body are required"),
        ({**OK, "body": ""}, "to, from, and body are required"),
        ({**OK, "body": 12}, "to, from, and body are required"),
        ({**OK, "from": None}, "to, from, and body are required"),
        # Required fields come before format: a missing body wins over a bad number.
        ({"to": "555", "from": "+15559876543"}, "to, from, and body are required"),
        ({**OK, "to": "5551234567"}, "to and from must be valid E.164 phone numbers"),
        ({**OK, "from": "+05559876543"}, "to and from must be valid E.164 phone numbers"),
        ({**OK, "to": "+1555"}, "to and from must be valid E.164 phone numbers"),
        ({**OK, "to": "+1234567890123456"}, "to and from must be valid E.164 phone numbers"),
        ({**OK, "to": "+1555123456\n"}, "to and from must be valid E.164 phone numbers"),
        # Format before length: a bad number and a long body → the number message.
        ({**OK, "to": "abc", "body": "x" * 1601}, "to and from must be valid E.164 phone numbers"),
        ({**OK, "body": "x" * 1601}, "body must be 1-1600 characters"),
        ({**OK, "body": "x" * 1601, "userId": 5}, "body must be 1-1600 characters"),
        ({**OK, "userId": 5}, "userId must be a string of at most 255 characters"),
        ({**OK, "userId": "u" * 256}, "userId must be a string of at most 255 characters"),
        ({**OK, "userId": ["a"]}, "userId must be a string of at most 255 characters"),
    ],
)
async def test_validation_messages_in_order(
    client: httpx.AsyncClient, tenant_a: Actor, gateway: Any, body: dict[str, Any], error: str
) -> None:
    r = await client.post("/v1/sms/send", json=body, headers=tenant_a.headers)
    assert r.status_code == 400, r.text
    assert r.json() == {"error": error}
    assert await count_messages(gateway) == 0


@pytest.mark.parametrize("raw", [b"not json", b"[1, 2]", b'"text"', b""])
async def test_body_must_be_a_json_object(client: httpx.AsyncClient, tenant_a: Actor, raw: bytes) -> None:
    r = await client.post("/v1/sms/send", content=raw, headers=tenant_a.headers)
    assert r.status_code == 400
    assert r.json() == {"error": "Invalid JSON body"}


async def test_accepts_limits_and_stores_queued(client: httpx.AsyncClient, tenant_a: Actor, gateway: Any) -> None:
    body = {**OK, "body": "é" * 1600, "userId": "u" * 255}
    r = await client.post("/v1/sms/send", json=body, headers=tenant_a.headers)
    assert r.status_code == 202, r.text
    answer = r.json()
    assert answer["status"] == "queued"
    assert answer["messageId"].startswith("msg_") and len(answer["messageId"]) == 16
    stored = await gateway.store.messages.get(answer["messageId"])
    assert stored is not None
    assert (stored.status, stored.direction, stored.tenant_id, stored.app_id) == (
        "queued",
        "outbound",
        tenant_a.tenant_id,
        tenant_a.app_id,
    )
    assert (stored.from_number, stored.to_number, stored.body, stored.user_id) == (
        OK["from"],
        OK["to"],
        body["body"],
        body["userId"],
    )
    assert stored.error is None and stored.rc_message_id is None


async def test_without_key_each_send_is_a_new_message(client: httpx.AsyncClient, tenant_a: Actor) -> None:
    ids = set()
    for _ in range(3):
        r = await client.post("/v1/sms/send", json=OK, headers=tenant_a.headers)
        assert r.status_code == 202
        ids.add(r.json()["messageId"])
    assert len(ids) == 3


async def test_idempotent_repeat_returns_the_original(client: httpx.AsyncClient, tenant_a: Actor, gateway: Any) -> None:
    headers = {**tenant_a.headers, "Idempotency-Key": "order-42"}
    first = await client.post("/v1/sms/send", json=OK, headers=headers)
    again = await client.post("/v1/sms/send", json=OK, headers=headers)
    assert first.status_code == again.status_code == 202
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert await count_messages(gateway) == 1


async def test_same_key_different_body_conflicts(client: httpx.AsyncClient, tenant_a: Actor, gateway: Any) -> None:
    headers = {**tenant_a.headers, "Idempotency-Key": "order-42"}
    assert (await client.post("/v1/sms/send", json=OK, headers=headers)).status_code == 202
    for changed in ({**OK, "body": "Other"}, {**OK, "userId": "u1"}, {**OK, "to": "+15551230000"}):
        r = await client.post("/v1/sms/send", json=changed, headers=headers)
        assert r.status_code == 409
        assert r.json() == {"error": "Idempotency-Key was already used with a different request"}
    assert await count_messages(gateway) == 1


async def test_keys_are_per_tenant(client: httpx.AsyncClient, tenant_a: Actor, tenant_b: Actor) -> None:
    a = await client.post("/v1/sms/send", json=OK, headers={**tenant_a.headers, "Idempotency-Key": "k"})
    b = await client.post("/v1/sms/send", json=OK, headers={**tenant_b.headers, "Idempotency-Key": "k"})
    assert a.status_code == b.status_code == 202
    assert a.json()["messageId"] != b.json()["messageId"]


async def test_key_expires_after_24_hours(
    client: httpx.AsyncClient, tenant_a: Actor, gateway: Any, clock: ManualClock
) -> None:
    headers = {**tenant_a.headers, "Idempotency-Key": "daily"}
    first = (await client.post("/v1/sms/send", json=OK, headers=headers)).json()["messageId"]
    clock.advance(23 * 3600)
    assert (await client.post("/v1/sms/send", json=OK, headers=headers)).json()["messageId"] == first
    clock.advance(3600)
    r = await client.post("/v1/sms/send", json={**OK, "body": "new day"}, headers=headers)
    assert r.status_code == 202
    assert r.json()["messageId"] != first
    assert await count_messages(gateway) == 2


@pytest.mark.parametrize("key", ["", "x" * 256, "with space", "tab\tkey", "ключ"])
async def test_bad_idempotency_key(client: httpx.AsyncClient, tenant_a: Actor, gateway: Any, key: str) -> None:
    headers = {**tenant_a.headers, "Idempotency-Key": key.encode("utf-8")}
    r = await client.post("/v1/sms/send", json=OK, headers=headers)
    assert r.status_code == 400
    assert r.json() == {"error": "Idempotency-Key must be 1-255 visible ASCII characters"}
    assert await count_messages(gateway) == 0


async def test_longest_key_is_accepted(client: httpx.AsyncClient, tenant_a: Actor) -> None:
    r = await client.post("/v1/sms/send", json=OK, headers={**tenant_a.headers, "Idempotency-Key": "~" * 255})
    assert r.status_code == 202


async def test_concurrent_repeats_make_one_message(client: httpx.AsyncClient, tenant_a: Actor, gateway: Any) -> None:
    headers = {**tenant_a.headers, "Idempotency-Key": "burst"}
    answers = await asyncio.gather(*(client.post("/v1/sms/send", json=OK, headers=headers) for _ in range(25)))
    assert {r.status_code for r in answers} == {202}
    assert len({r.json()["messageId"] for r in answers}) == 1
    assert await count_messages(gateway) == 1
    async with gateway.db.read() as conn:
        assert (await conn.execute(select(func.count()).select_from(idempotency_keys))).scalar_one() == 1


async def test_concurrent_sends_are_all_stored(client: httpx.AsyncClient, tenant_a: Actor, gateway: Any) -> None:
    answers = await asyncio.gather(
        *(client.post("/v1/sms/send", json={**OK, "body": f"n{i}"}, headers=tenant_a.headers) for i in range(60))
    )
    assert {r.status_code for r in answers} == {202}
    ids = {r.json()["messageId"] for r in answers}
    assert len(ids) == 60
    for message_id in list(ids)[:5]:
        assert (await gateway.store.messages.get(message_id)).status == "queued"
    assert await count_messages(gateway) == 60


async def test_requires_an_api_key(client: httpx.AsyncClient) -> None:
    r = await client.post("/v1/sms/send", json=OK)
    assert r.status_code == 401
    assert r.json() == {"error": "Missing or invalid API key"}


async def test_suspended_tenant_cannot_send(
    client: httpx.AsyncClient, tenant_a: Actor, admin: Actor, gateway: Any
) -> None:
    await gateway.tenants.update(tenant_a.tenant_id, {"status": "suspended"})
    r = await client.post("/v1/sms/send", json=OK, headers=tenant_a.headers)
    assert r.status_code == 403
    assert r.json() == {"error": "Tenant suspended or inactive"}
    assert await count_messages(gateway) == 0
