"""Sending SMS: validation, ownership, the 1000-unit limit, progression and failures, the store."""

from __future__ import annotations

from typing import Any

from .conftest import EXT, MAIN_NUMBER, OTHER_NUMBER, SMS_NUMBER, Emu, bearer, fixture, same_shape

SMS = "/restapi/v1.0/account/~/extension/~/sms"
STORE = "/restapi/v1.0/account/~/extension/~/message-store"
TO = "+15551234567"


async def _send(emu: Emu, token: str, **overrides: Any) -> Any:
    body = {"from": {"phoneNumber": SMS_NUMBER}, "to": [{"phoneNumber": TO}], "text": "Hello from Gravity SMS!"}
    return await emu.client.post(SMS, json=body | overrides, headers=bearer(token))


async def test_send_answers_like_the_fixture(emu: Emu) -> None:
    token = (await emu.login())["access_token"]
    r = await _send(emu, token)
    assert r.status_code == 200, r.text
    body = r.json()
    same_shape(body, fixture("sms__send_response"))
    assert isinstance(body["id"], int)
    assert body["messageStatus"] == "Queued"
    assert body["from"] == {"phoneNumber": SMS_NUMBER, "name": "Front Desk", "location": "Springfield, IL"}
    assert body["to"] == [{"phoneNumber": TO}]
    logged = (await emu.client.get("/_emulator/sms")).json()["sms"]
    assert logged[0]["id"] == str(body["id"])
    assert (logged[0]["from"], logged[0]["to"], logged[0]["text"]) == (SMS_NUMBER, TO, "Hello from Gravity SMS!")
    assert logged[0]["extensionId"] == EXT
    assert logged[0]["authorization"] is True


async def test_from_must_be_owned_and_sms_capable(emu: Emu) -> None:
    token = (await emu.login())["access_token"]
    foreign = await _send(emu, token, **{"from": {"phoneNumber": "+15550001111"}})
    assert foreign.status_code == 400
    assert foreign.json() == fixture("error__from_not_owned")
    other_extension = await _send(emu, token, **{"from": {"phoneNumber": OTHER_NUMBER}})
    assert other_extension.json()["errorCode"] == "MSG-245"
    no_sms_feature = await _send(emu, token, **{"from": {"phoneNumber": MAIN_NUMBER}})
    assert no_sms_feature.status_code == 400
    assert no_sms_feature.json()["errorCode"] == "MSG-245"


async def test_to_and_text_are_checked(emu: Emu) -> None:
    token = (await emu.login())["access_token"]
    no_to = await _send(emu, token, to=[])
    assert no_to.status_code == 400
    assert no_to.json()["errors"][0] == {
        "errorCode": "CMN-101",
        "message": "Parameter [to] value is invalid",
        "parameterName": "to",
    }
    bad_to = await _send(emu, token, to=[{"phoneNumber": "call me"}])
    assert bad_to.json()["errors"][0]["parameterName"] == "to.phoneNumber"
    assert (await _send(emu, token, text="a" * 1000)).status_code == 200
    too_long = await _send(emu, token, text="a" * 1001)
    assert too_long.status_code == 400
    assert too_long.json()["errors"][0]["parameterName"] == "text"
    # 500 emoji are 1000 UTF-16 code units; one more is over.
    assert (await _send(emu, token, text="\U0001f600" * 500)).status_code == 200
    assert (await _send(emu, token, text="\U0001f600" * 500 + "a")).status_code == 400
    not_json = await emu.client.post(SMS, content=b"{", headers=bearer(token))
    assert not_json.status_code == 400


async def test_status_progresses_with_the_clock(emu: Emu) -> None:
    token = (await emu.login())["access_token"]
    sent = (await _send(emu, token)).json()
    url = f"{STORE}/{sent['id']}"
    assert (await emu.client.get(url, headers=bearer(token))).json()["messageStatus"] == "Queued"
    await emu.advance(1)
    assert (await emu.client.get(url, headers=bearer(token))).json()["messageStatus"] == "Sent"
    await emu.advance(1)
    delivered = (await emu.client.get(url, headers=bearer(token))).json()
    assert delivered["messageStatus"] == "Delivered"
    same_shape(delivered, fixture("message__delivered"))


async def test_configured_delivery_failure(emu: Emu) -> None:
    token = (await emu.login())["access_token"]
    r = await emu.client.post(
        "/_emulator/faults",
        json={
            "deliveryFailure": [
                {"to": TO, "errorCode": "SMS-CAR-450", "status": "DeliveryFailed", "count": 1},
                {"to": "+15551112222", "status": "SendingFailed"},
            ]
        },
    )
    assert r.status_code == 200
    failing = (await _send(emu, token)).json()
    fine = (await _send(emu, token)).json()
    never_sent = (await _send(emu, token, to=[{"phoneNumber": "+15551112222"}])).json()
    await emu.advance(1)
    assert (await emu.client.get(f"{STORE}/{never_sent['id']}", headers=bearer(token))).json()["messageStatus"] == (
        "SendingFailed"
    )
    await emu.advance(1)
    failed = (await emu.client.get(f"{STORE}/{failing['id']}", headers=bearer(token))).json()
    same_shape(failed, fixture("message__delivery_failed"))
    assert (failed["messageStatus"], failed["deliveryErrorCode"]) == ("DeliveryFailed", "SMS-CAR-450")
    assert (await emu.client.get(f"{STORE}/{fine['id']}", headers=bearer(token))).json()["messageStatus"] == "Delivered"
    stored = (await emu.client.get(f"{STORE}/{never_sent['id']}", headers=bearer(token))).json()
    assert stored["deliveryErrorCode"] == "SMS-RC-413"


async def test_message_store_list_filters_and_paging(emu: Emu) -> None:
    token = (await emu.login())["access_token"]
    first = (await _send(emu, token, text="one")).json()
    await emu.advance(10)
    second = (await _send(emu, token, text="two")).json()
    inbound = await emu.client.post("/_emulator/inbound", json={"from": TO, "to": SMS_NUMBER, "text": "in"})
    outbound = (await emu.client.get(f"{STORE}?direction=Outbound&messageType=SMS", headers=bearer(token))).json()
    assert [m["id"] for m in outbound["records"]] == [second["id"], first["id"]]  # newest first
    inbound_only = (await emu.client.get(f"{STORE}?direction=Inbound", headers=bearer(token))).json()
    assert [m["id"] for m in inbound_only["records"]] == [int(inbound.json()["id"])]
    since = second["creationTime"]
    recent = (
        await emu.client.get(STORE, params={"dateFrom": since, "direction": "Outbound"}, headers=bearer(token))
    ).json()
    assert [m["id"] for m in recent["records"]] == [second["id"]]
    before = (await emu.client.get(STORE, params={"dateTo": since}, headers=bearer(token))).json()
    assert [m["id"] for m in before["records"]] == [first["id"]]
    paged = (await emu.client.get(f"{STORE}?perPage=2&page=2", headers=bearer(token))).json()
    assert [m["id"] for m in paged["records"]] == [first["id"]]
    assert paged["paging"]["totalElements"] == 3
    assert "nextPage" not in paged["navigation"]
    assert "perPage=2" in paged["navigation"]["previousPage"]["uri"]
    await emu.advance(25 * 3600)  # default dateFrom is the last 24 hours
    fresh = (await emu.login())["access_token"]
    assert (await emu.client.get(STORE, headers=bearer(fresh))).json()["records"] == []


async def test_other_extensions_messages_are_not_found(emu: Emu) -> None:
    token = (await emu.login())["access_token"]
    sent = (await _send(emu, token)).json()
    other = (await emu.login(login_hint="102"))["access_token"]
    r = await emu.client.get(f"{STORE}/{sent['id']}", headers=bearer(other))
    assert r.status_code == 404
    assert r.json()["errors"][0]["parameterName"] == "messageId"
