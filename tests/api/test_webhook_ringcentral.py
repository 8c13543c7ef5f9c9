"""`POST /v1/webhooks/ringcentral`: handshake, verification, parsing, dedup, disconnected
tenants, bad input (api.md §6, ringcentral.md §2-§3)."""

from __future__ import annotations

import asyncio
import copy
import json
from typing import Any

import httpx
import pytest
from sqlalchemy import event, func, select, update

from gravity_sms.domain.fanout import inbound_event
from gravity_sms.domain.inbound import EVENTS_CHANNEL
from gravity_sms.store.tables import messages, tenants
from tests.conftest import Actor
from tests.inbound_support import WEBHOOK, Connection, connect_tenant, encode, fixture, sms_event


@pytest.fixture
async def conn(gateway: Any, tenant_a: Actor) -> Connection:
    return await connect_tenant(gateway.db, tenant_a.tenant_id)


async def count_messages(gw: Any) -> int:
    async with gw.db.read() as c:
        return int((await c.execute(select(func.count()).select_from(messages))).scalar_one())


async def stored(gw: Any) -> list[Any]:
    async with gw.db.read() as c:
        return list((await c.execute(select(messages))).all())


async def post(client: httpx.AsyncClient, event: Any, headers: dict[str, str]) -> httpx.Response:
    return await client.post(WEBHOOK, content=encode(event) if not isinstance(event, bytes) else event, headers=headers)


# --- handshake ---------------------------------------------------------------------------------
async def test_handshake_echoes_token_with_a_tiny_response_and_no_database_work(
    client: httpx.AsyncClient, gateway: Any
) -> None:
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(str(args[2]))

    event.listen(gateway.db.engine.sync_engine, "before_cursor_execute", count)
    try:
        r = await client.post(WEBHOOK, headers={"Validation-Token": "a1b2c3-token"})
    finally:
        event.remove(gateway.db.engine.sync_engine, "before_cursor_execute", count)
    assert r.status_code == 200
    assert r.headers["validation-token"] == "a1b2c3-token"
    assert r.content == b""
    size = len("HTTP/1.1 200 OK\r\n") + 2 + sum(len(k) + len(v) + 4 for k, v in r.headers.items())
    assert size < 1024, size
    assert statements == []


async def test_request_without_body_or_token_is_invalid(client: httpx.AsyncClient) -> None:
    r = await client.post(WEBHOOK)
    assert r.status_code == 400
    assert r.json() == {"error": "Invalid event"}


# --- storing -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "shape", ["event__instant_sms_inbound", "event__instant_sms_inbound_legacy", "event__instant_mms_inbound"]
)
async def test_instant_sms_is_stored_once_as_received(
    client: httpx.AsyncClient, gateway: Any, conn: Connection, shape: str
) -> None:
    raw = copy.deepcopy(fixture(shape))
    raw["subscriptionId"] = conn.subscription_id
    r = await post(client, raw, conn.headers)
    assert r.status_code == 200, r.text
    rows = await stored(gateway)
    assert len(rows) == 1
    row = rows[0]
    body = raw["body"]
    assert row.tenant_id == conn.tenant_id
    assert row.direction == "inbound"
    assert row.status == "received"
    assert row.rc_message_id == body["id"]
    assert row.body == body["subject"]
    assert row.from_number == body["from"]["phoneNumber"]
    assert row.to_number == body["to"][0]["phoneNumber"]
    assert row.fanout_pending is True or row.fanout_pending == 1
    assert row.extension_id == conn.extension_id

    msg = await gateway.store.messages.get(row.id)
    assert msg.rc_created_at is not None
    assert inbound_event(msg)["timestamp"] == body["creationTime"]


async def test_recipient_is_the_number_of_the_tenant(gateway: Any, client: httpx.AsyncClient, tenant_a: Actor) -> None:
    conn = await connect_tenant(gateway.db, tenant_a.tenant_id, numbers=("+15559876543", "+15559870000"))
    raw = sms_event(conn)
    raw["body"]["to"] = [
        {"phoneNumber": "+15550001111", "target": True},
        {"phoneNumber": "+15559870000"},
    ]
    assert (await post(client, raw, conn.headers)).status_code == 200
    (row,) = await stored(gateway)
    assert row.to_number == "+15559870000"


async def test_recipient_falls_back_to_the_target_entry(
    gateway: Any, client: httpx.AsyncClient, conn: Connection
) -> None:
    raw = sms_event(conn)
    raw["body"]["to"] = [{"phoneNumber": "+15550001111"}, {"phoneNumber": "+15550002222", "target": True}]
    assert (await post(client, raw, conn.headers)).status_code == 200
    (row,) = await stored(gateway)
    assert row.to_number == "+15550002222"


async def test_emoji_and_1600_characters_are_kept_exactly(
    gateway: Any, client: httpx.AsyncClient, conn: Connection
) -> None:
    texts = ["Ça va? 👍🏽 — 你好 🇫🇷", "é" * 1600, "x" * 1599 + "😀"]
    for text in texts:
        assert (await post(client, sms_event(conn, text=text), conn.headers)).status_code == 200
    assert sorted(r.body for r in await stored(gateway)) == sorted(texts)


async def test_event_is_published_for_websockets(gateway: Any, client: httpx.AsyncClient, conn: Connection) -> None:
    async with gateway.broker.subscribe(EVENTS_CHANNEL) as events:
        r = await post(client, sms_event(conn, rc_id="777"), conn.headers)
        assert r.status_code == 200
        async with asyncio.timeout(5):
            published = await anext(events)
    (row,) = await stored(gateway)
    assert published == inbound_event(await gateway.store.messages.get(row.id))
    assert published["type"] == "sms_inbound"
    assert published["tenantId"] == conn.tenant_id
    assert published["rcMessageId"] == "777"


# --- duplicates --------------------------------------------------------------------------------
async def test_ten_concurrent_duplicates_store_one_row(
    gateway: Any, client: httpx.AsyncClient, conn: Connection
) -> None:
    raw = sms_event(conn, rc_id="2718281828459")
    answers = await asyncio.gather(*(post(client, raw, conn.headers) for _ in range(10)))
    assert [a.status_code for a in answers] == [200] * 10
    assert await count_messages(gateway) == 1


async def test_same_rc_id_in_two_tenants_is_two_messages(
    gateway: Any, client: httpx.AsyncClient, conn: Connection, tenant_b: Actor
) -> None:
    other = await connect_tenant(gateway.db, tenant_b.tenant_id, extension_id="999", numbers=("+15557770001",))
    for c in (conn, other):
        assert (await post(client, sms_event(c, rc_id="42"), c.headers)).status_code == 200
    assert await count_messages(gateway) == 2


# --- verification ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Verification-Token": "wrong"},
        {"Verification-Token": ""},
        {"Validation-Token": "wrong"},
    ],
    ids=["missing", "wrong", "empty", "wrong-validation-fallback"],
)
async def test_missing_or_wrong_token_is_401_and_stores_nothing(
    gateway: Any, client: httpx.AsyncClient, conn: Connection, headers: dict[str, str]
) -> None:
    r = await post(client, sms_event(conn), headers)
    assert r.status_code == 401
    assert r.json() == {"error": "Invalid verification token"}
    assert await count_messages(gateway) == 0


async def test_validation_token_header_on_an_event_is_verified_not_a_handshake(
    gateway: Any, client: httpx.AsyncClient, conn: Connection
) -> None:
    r = await post(client, sms_event(conn), {"Validation-Token": conn.token})
    assert r.status_code == 200
    assert r.headers["validation-token"] == conn.token
    assert await count_messages(gateway) == 1


async def test_unknown_subscription_is_401(gateway: Any, client: httpx.AsyncClient, conn: Connection) -> None:
    raw = sms_event(conn)
    raw["subscriptionId"] = "no-such-subscription"
    r = await post(client, raw, conn.headers)
    assert r.status_code == 401
    assert r.json() == {"error": "Invalid verification token"}
    assert await count_messages(gateway) == 0


async def test_token_of_another_subscription_is_refused(
    gateway: Any, client: httpx.AsyncClient, conn: Connection, tenant_b: Actor
) -> None:
    other = await connect_tenant(gateway.db, tenant_b.tenant_id, extension_id="999", numbers=("+15557770001",))
    r = await post(client, sms_event(conn), other.headers)
    assert r.status_code == 401
    assert await count_messages(gateway) == 0


# --- disconnected or suspended tenants ---------------------------------------------------------
@pytest.mark.parametrize(
    ("subscription_status", "extension_status"),
    [("Active", "disconnected"), ("Blacklisted", "connected"), ("Deleted", "connected")],
)
async def test_events_of_a_disconnected_tenant_store_nothing(
    gateway: Any, client: httpx.AsyncClient, tenant_a: Actor, subscription_status: str, extension_status: str
) -> None:
    conn = await connect_tenant(
        gateway.db,
        tenant_a.tenant_id,
        subscription_status=subscription_status,
        extension_status=extension_status,
    )
    r = await post(client, sms_event(conn), conn.headers)
    assert r.status_code == 200
    assert await count_messages(gateway) == 0


async def test_events_of_a_suspended_tenant_store_nothing(
    gateway: Any, client: httpx.AsyncClient, conn: Connection
) -> None:
    async with gateway.db.write() as c:
        await c.execute(update(tenants).where(tenants.c.id == conn.tenant_id).values(status="suspended"))
    r = await post(client, sms_event(conn), conn.headers)
    assert r.status_code == 200
    assert await count_messages(gateway) == 0


# --- other events ------------------------------------------------------------------------------
async def test_other_events_are_acknowledged_and_ignored(
    gateway: Any, client: httpx.AsyncClient, conn: Connection
) -> None:
    change = fixture("event__message_store_change")
    change["subscriptionId"] = conn.subscription_id
    outbound = sms_event(conn)
    outbound["body"]["direction"] = "Outbound"
    for raw in (change, outbound):
        r = await post(client, raw, conn.headers)
        assert r.status_code == 200, r.text
    assert await count_messages(gateway) == 0


class FakeConnections:
    def __init__(self) -> None:
        self.reminders: list[str] = []
        self.events: list[tuple[str, str]] = []

    async def handle_expiry_reminder(self, subscription_id: str) -> None:
        self.reminders.append(subscription_id)

    async def note_event(self, tenant_id: str, extension_id: str, at: Any) -> None:
        self.events.append((tenant_id, extension_id))


async def test_expiry_reminder_is_handed_to_the_connection_service(
    gateway: Any, client: httpx.AsyncClient, conn: Connection
) -> None:
    fake = FakeConnections()
    gateway.connections = fake
    reminder = fixture("event__subscription_expiry_reminder")
    reminder["subscriptionId"] = conn.subscription_id
    r = await post(client, reminder, conn.headers)
    assert r.status_code == 200
    assert fake.reminders == [conn.subscription_id]
    r = await post(client, sms_event(conn), conn.headers)
    assert r.status_code == 200
    assert fake.events == [(conn.tenant_id, conn.extension_id)]
    assert await count_messages(gateway) == 1


async def test_expiry_reminder_with_a_wrong_token_is_refused(
    gateway: Any, client: httpx.AsyncClient, conn: Connection
) -> None:
    fake = FakeConnections()
    gateway.connections = fake
    reminder = fixture("event__subscription_expiry_reminder")
    reminder["subscriptionId"] = conn.subscription_id
    r = await post(client, reminder, {"Verification-Token": "nope"})
    assert r.status_code == 401
    assert fake.reminders == []


# --- bad input ---------------------------------------------------------------------------------
def _mutations(conn: Connection) -> list[tuple[str, Any]]:
    def with_body(**changes: Any) -> dict[str, Any]:
        raw = sms_event(conn)
        for key, value in changes.items():
            if value is _DELETE:
                del raw["body"][key]
            else:
                raw["body"][key] = value
        return raw

    no_sub = sms_event(conn)
    del no_sub["subscriptionId"]
    sub_int = sms_event(conn)
    sub_int["subscriptionId"] = 12345
    body_list = sms_event(conn)
    body_list["body"] = ["not", "an", "object"]
    return [
        ("not-json", b"{not json"),
        ("json-array", b"[1, 2, 3]"),
        ("json-string", b'"hello"'),
        ("missing-subscriptionId", no_sub),
        ("subscriptionId-int", sub_int),
        ("body-list", body_list),
        ("to-string", with_body(to="+15559876543")),
        ("to-empty", with_body(to=[])),
        ("from-missing", with_body(**{"from": _DELETE})),
        ("from-number-int", with_body(**{"from": {"phoneNumber": 15551234567}})),
        ("from-too-long", with_body(**{"from": {"phoneNumber": "+1" + "5" * 30}})),
        ("id-object", with_body(id={"x": 1})),
        ("id-missing", with_body(id=_DELETE)),
        ("subject-number", with_body(subject=12)),
    ]


_DELETE = object()


async def test_malformed_events_are_400_and_store_nothing(
    gateway: Any, client: httpx.AsyncClient, conn: Connection
) -> None:
    for name, raw in _mutations(conn):
        r = await post(client, raw, conn.headers)
        assert r.status_code == 400, (name, r.status_code, r.text)
        assert r.json() == {"error": "Invalid event"}, name
    assert await count_messages(gateway) == 0


async def test_non_utf8_body_is_400(gateway: Any, client: httpx.AsyncClient, conn: Connection) -> None:
    raw = encode(sms_event(conn, text="PLACEHOLDER")).replace(b"PLACEHOLDER", b"\xff\xfe\xc3(")
    r = await post(client, raw, conn.headers)
    assert r.status_code == 400
    assert r.json() == {"error": "Invalid event"}
    lone = encode(sms_event(conn, text="PLACEHOLDER")).replace(b"PLACEHOLDER", b"\\ud800")
    r = await post(client, lone, conn.headers)
    assert r.status_code in (200, 400)
    assert r.status_code != 500


async def test_nul_in_text_never_breaks_the_insert(gateway: Any, client: httpx.AsyncClient, conn: Connection) -> None:
    r = await post(client, sms_event(conn, text="a\u0000b"), conn.headers)
    assert r.status_code == 200
    (row,) = await stored(gateway)
    assert row.body == "a\ufffdb"


async def test_body_over_100_kb_is_413(gateway: Any, client: httpx.AsyncClient, conn: Connection) -> None:
    raw = sms_event(conn)
    raw["body"]["padding"] = "x" * (101 * 1024)
    r = await post(client, raw, conn.headers)
    assert r.status_code == 413
    assert r.json() == {"error": "Payload too large"}
    assert await count_messages(gateway) == 0


async def test_unknown_extra_fields_are_tolerated(gateway: Any, client: httpx.AsyncClient, conn: Connection) -> None:
    raw = sms_event(conn)
    raw["brandNew"] = {"nested": [1, 2]}
    raw["body"]["someFutureField"] = True
    raw["body"]["to"][0]["extra"] = "x"
    for key in ("creationTime", "lastModifiedTime", "attachments", "conversation", "owner", "type", "readStatus"):
        raw["body"].pop(key, None)
    r = await post(client, raw, conn.headers)
    assert r.status_code == 200
    assert await count_messages(gateway) == 1


async def test_response_body_never_echoes_the_event(gateway: Any, client: httpx.AsyncClient, conn: Connection) -> None:
    r = await post(client, sms_event(conn, text="secret text"), conn.headers)
    assert "secret text" not in r.text
    assert conn.token not in json.dumps(dict(r.headers))
