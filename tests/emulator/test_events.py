"""Inbound SMS: stored, delivered with the fixture's shape and headers, blacklisting."""

from __future__ import annotations

from typing import Any

from .conftest import ACCOUNT, EXT, SMS_NUMBER, Emu, Receiver, bearer, fixture, same_shape

SENDER = "+15551234567"
STORE = "/restapi/v1.0/account/~/extension/~/message-store"


async def _subscribed(emu: Emu, **overrides: Any) -> tuple[str, str]:
    token = (await emu.login())["access_token"]
    r = await emu.subscribe(token, **overrides)
    assert r.status_code == 200, r.text
    return token, r.json()["id"]


async def _inbound(emu: Emu, **fields: Any) -> dict[str, Any]:
    r = await emu.client.post("/_emulator/inbound", json={"from": SENDER, "to": SMS_NUMBER, "text": "Hi"} | fields)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def test_inbound_event_has_the_fixture_shape_and_headers(emu: Emu, receiver: Receiver) -> None:
    _, sub_id = await _subscribed(emu)
    result = await _inbound(emu, text="Hey, is my appointment still on?", fromLocation="Chicago, IL")
    assert result["deliveries"] == [
        {
            "subscriptionId": sub_id,
            "event": f"/restapi/v1.0/account/{ACCOUNT}/extension/{EXT}/message-store/instant?type=SMS",
            "status": 200,
            "error": None,
        }
    ]
    headers, event = receiver.events[0]
    assert headers["content-type"] == "application/json; charset=UTF-8"
    assert headers["user-agent"].startswith("RingCentral-Webhook/8.")
    assert headers["verification-token"] == "vt-secret"
    expected = fixture("event__instant_sms_inbound")
    same_shape(event, expected)
    assert event["subscriptionId"] == sub_id
    assert event["ownerId"] == EXT
    assert event["event"] == expected["event"]
    body = event["body"]
    assert body["id"] == result["id"]
    assert body["subject"] == "Hey, is my appointment still on?"
    assert body["to"] == [
        {"phoneNumber": SMS_NUMBER, "name": "Front Desk", "location": "Springfield, IL", "target": True}
    ]
    assert body["from"]["phoneNumberInfo"] == expected["body"]["from"]["phoneNumberInfo"]
    assert body["owner"] == expected["body"]["owner"]


async def test_no_verification_header_when_none_was_given(emu: Emu, receiver: Receiver) -> None:
    await _subscribed(emu, deliveryMode={"transportType": "WebHook", "address": "http://receiver.test/h"})
    await _inbound(emu)
    headers, _ = receiver.events[0]
    assert "verification-token" not in headers


async def test_inbound_is_stored_and_readable(emu: Emu) -> None:
    token, _ = await _subscribed(emu)
    result = await _inbound(emu, text="stored")
    one = (await emu.client.get(f"{STORE}/{result['id']}", headers=bearer(token))).json()
    assert one["id"] == int(result["id"])
    assert (one["direction"], one["messageStatus"], one["readStatus"]) == ("Inbound", "Received", "Unread")
    assert one["subject"] == "stored"


async def test_duplicates_deliver_the_same_event_n_times(emu: Emu, receiver: Receiver) -> None:
    await _subscribed(emu)
    result = await _inbound(emu, duplicates=3)
    assert [d["status"] for d in result["deliveries"]] == [200, 200, 200]
    uuids = {event["uuid"] for _, event in receiver.events}
    assert len(receiver.events) == 3
    assert len(uuids) == 1


async def test_deliver_false_stores_without_delivering(emu: Emu, receiver: Receiver) -> None:
    token, _ = await _subscribed(emu)
    r = await emu.client.post("/_emulator/inbound?deliver=false", json={"from": SENDER, "to": SMS_NUMBER, "text": "x"})
    assert r.json()["deliveries"] == []
    assert receiver.events == []
    listed = (await emu.client.get(f"{STORE}?direction=Inbound", headers=bearer(token))).json()
    assert [m["id"] for m in listed["records"]] == [int(r.json()["id"])]


async def test_blacklisted_after_consecutive_failures(emu: Emu, receiver: Receiver) -> None:
    token, sub_id = await _subscribed(emu)
    receiver.status = 503
    for _ in range(2):
        assert (await _inbound(emu))["deliveries"][0]["status"] == 503
    sub = (await emu.client.get(f"/restapi/v1.0/subscription/{sub_id}", headers=bearer(token))).json()
    assert sub["status"] == "Active"
    await _inbound(emu)  # the third consecutive failure
    listed = (await emu.client.get("/restapi/v1.0/subscription", headers=bearer(token))).json()
    same_shape(listed, fixture("subscription__blacklisted_list"))
    blacklisted = listed["records"][0]
    assert blacklisted["status"] == "Blacklisted"
    assert (
        blacklisted["blacklistedData"]["reason"] == "Webhook responses with code: [503], reason: [Service Unavailable]"
    )
    receiver.status = 200
    assert (await _inbound(emu))["deliveries"] == []  # delivers nothing more
    assert len(receiver.events) == 3


async def test_a_success_resets_the_failure_count(emu: Emu, receiver: Receiver) -> None:
    await _subscribed(emu)
    for status in (500, 500, 200, 500, 500):
        receiver.status = status
        await _inbound(emu)
    state = (await emu.client.get("/_emulator/state")).json()
    assert state["subscriptions"][0]["status"] == "Active"
    assert state["subscriptions"][0]["consecutiveFailures"] == 2


async def test_unreachable_deliveries_count_too(emu: Emu, closed_port: int) -> None:
    _, sub_id = await _subscribed(emu)
    emu.state.subscriptions[sub_id].address = f"http://127.0.0.1:{closed_port}/hook"
    emu.state.config.webhook_transport = None
    for _ in range(3):
        result = await _inbound(emu)
        assert result["deliveries"][0]["status"] is None
        assert result["deliveries"][0]["error"] == "ConnectError"
    assert emu.state.subscriptions[sub_id].status == "Blacklisted"


async def test_message_store_change_event(emu: Emu, receiver: Receiver) -> None:
    await _subscribed(emu, eventFilters=["/restapi/v1.0/account/~/extension/~/message-store"])
    result = await _inbound(emu)
    _, event = receiver.events[0]
    expected = fixture("event__message_store_change")
    assert event["event"] == expected["event"]
    assert event["body"]["accountId"] == int(ACCOUNT)
    assert event["body"]["changes"][0]["newCount"] == 1
    assert event["body"]["changes"][0]["newMessageIds"] == [int(result["id"])]


async def test_unknown_recipient_is_404(emu: Emu) -> None:
    r = await emu.client.post("/_emulator/inbound", json={"from": SENDER, "to": "+15550000000", "text": "x"})
    assert r.status_code == 404
