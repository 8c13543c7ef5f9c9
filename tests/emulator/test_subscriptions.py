"""Subscriptions: handshake outcomes, reads, renew, PUT, delete, expiry, the 30 cap."""

from __future__ import annotations

from typing import Any

from gravity_sms.emulator import EmulatorConfig

from .conftest import ACCOUNT, EXT, HOOK, INSTANT, Emu, Receiver, bearer, fixture, same_shape

SUBS = "/restapi/v1.0/subscription"
REMINDER = "/restapi/v1.0/subscription/~?threshold=86400&interval=3600"


async def _token(emu: Emu) -> str:
    tokens: dict[str, Any] = await emu.login()
    return str(tokens["access_token"])


async def test_create_performs_the_handshake_and_answers_like_the_fixture(emu: Emu, receiver: Receiver) -> None:
    token = await _token(emu)
    r = await emu.subscribe(token, eventFilters=[INSTANT, REMINDER])
    assert r.status_code == 200, r.text
    body = r.json()
    same_shape(body, fixture("subscription__created"))
    assert body["status"] == "Active"
    assert body["eventFilters"] == [
        f"/restapi/v1.0/account/{ACCOUNT}/extension/{EXT}/message-store/instant?type=SMS",
        f"/restapi/v1.0/subscription/{body['id']}?threshold=86400&interval=3600",
    ]
    assert body["expiresIn"] in (604799, 604800)
    assert body["deliveryMode"] == {"transportType": "WebHook", "encryption": False, "address": HOOK}
    assert "vt-secret" not in r.text
    assert len(receiver.handshakes) == 1
    handshake = receiver.handshakes[0]
    assert len(handshake["validation-token"]) >= 32
    assert handshake["content-length"] == "0"


async def test_handshake_without_echo_is_sub_520(emu: Emu, receiver: Receiver) -> None:
    receiver.mode = "no-echo"
    r = await emu.subscribe(await _token(emu))
    assert r.status_code == 400
    assert r.json() == fixture("error__handshake_failed")


async def test_handshake_response_too_large_is_sub_525(emu: Emu, receiver: Receiver) -> None:
    receiver.mode = "large"
    r = await emu.subscribe(await _token(emu))
    assert r.status_code == 400
    assert r.json()["errorCode"] == "SUB-525"


async def test_unreachable_address_is_sub_521(emu: Emu, closed_port: int) -> None:
    emu.state.config.webhook_transport = None  # real network, to a loopback port nobody listens on
    r = await emu.subscribe(
        await _token(emu),
        deliveryMode={"transportType": "WebHook", "address": f"http://127.0.0.1:{closed_port}/hook"},
    )
    assert r.status_code == 400
    assert r.json()["errorCode"] == "SUB-521"


async def test_read_renew_put_delete_and_not_found(emu: Emu) -> None:
    token = await _token(emu)
    created = (await emu.subscribe(token, expiresIn=3600)).json()
    url = f"{SUBS}/{created['id']}"
    listed = (await emu.client.get(SUBS, headers=bearer(token))).json()
    assert [s["id"] for s in listed["records"]] == [created["id"]]
    assert (await emu.client.get(url, headers=bearer(token))).json()["id"] == created["id"]

    await emu.advance(1000)
    renewed = (await emu.client.post(f"{url}/renew", headers=bearer(token))).json()
    assert renewed["expiresIn"] in (3599, 3600)
    assert renewed["expirationTime"] > created["expirationTime"]

    put = await emu.client.put(url, json={"eventFilters": [INSTANT], "expiresIn": 7200}, headers=bearer(token))
    assert put.status_code == 200
    assert put.json()["expiresIn"] in (7199, 7200)
    moved = await emu.client.put(
        url, json={"deliveryMode": {"transportType": "WebHook", "address": "http://x.test/"}}, headers=bearer(token)
    )
    assert moved.status_code == 400

    deleted = await emu.client.delete(url, headers=bearer(token))
    assert deleted.status_code == 204
    missing = await emu.client.get(url, headers=bearer(token))
    assert missing.status_code == 404
    assert missing.json() == fixture("error__subscription_not_found")


async def test_expired_subscription_is_gone(emu: Emu) -> None:
    token = await _token(emu)
    created = (await emu.subscribe(token, expiresIn=600)).json()
    await emu.advance(601)
    tokens = await emu.login()  # the first access token may have expired meanwhile: no, 601 < 3600
    for access in (token, tokens["access_token"]):
        r = await emu.client.post(f"{SUBS}/{created['id']}/renew", headers=bearer(access))
        assert r.status_code == 404
        assert r.json()["errorCode"] == "CMN-102"
    assert (await emu.client.get(SUBS, headers=bearer(token))).json()["records"] == []


async def test_at_most_thirty_per_user_per_app(receiver: Receiver, config: EmulatorConfig) -> None:
    from .conftest import create_emu

    async with create_emu(config, max_subscriptions_per_user_app=2, enforce_rate_limits=False) as emu:
        token = await _token(emu)
        assert (await emu.subscribe(token)).status_code == 200
        assert (await emu.subscribe(token)).status_code == 200
        third = await emu.subscribe(token)
        assert third.status_code == 403
        assert third.json()["errorCode"] == "SUB-505"
    assert EmulatorConfig().max_subscriptions_per_user_app == 30


async def test_bad_bodies(emu: Emu) -> None:
    token = await _token(emu)
    assert (await emu.subscribe(token, eventFilters=[])).json()["errors"][0]["parameterName"] == "eventFilters"
    pubnub = await emu.subscribe(token, deliveryMode={"transportType": "PubNub"})
    assert pubnub.status_code == 400
    assert pubnub.json()["errors"][0]["parameterName"] == "deliveryMode.transportType"


async def test_expiry_reminder_is_delivered_within_the_threshold(emu: Emu, receiver: Receiver) -> None:
    token = await _token(emu)
    created = (await emu.subscribe(token, eventFilters=[INSTANT, REMINDER], expiresIn=90000)).json()
    first = await emu.advance(100)
    assert first["pending"]["reminders"] == []
    second = await emu.advance(4000)  # 85900 s left: inside the 86400 s threshold
    assert [d["status"] for d in second["pending"]["reminders"]] == [200]
    headers, event = receiver.events[-1]
    same_shape(event, fixture("event__subscription_expiry_reminder"))
    assert event["event"] == REMINDER
    assert event["subscriptionId"] == created["id"]
    assert event["ownerId"] == EXT
    assert 85800 <= event["body"]["expiresIn"] <= 85900
    assert headers["verification-token"] == "vt-secret"
    again = await emu.client.post("/_emulator/deliver-pending")
    assert again.json()["reminders"] == []  # the interval has not passed
    third = await emu.advance(3600)
    assert len(third["pending"]["reminders"]) == 1


async def test_handshake_with_another_status_is_refused(emu: Emu, receiver: Receiver) -> None:
    receiver.mode = "404"
    r = await emu.subscribe(await _token(emu))
    assert r.status_code == 400
    assert r.json()["errorCode"] == "SUB-521"
    assert "[404]" in r.json()["message"]
    log = (await emu.client.get("/_emulator/deliveries")).json()["deliveries"]
    assert [(d["kind"], d["status"], d["error"]) for d in log] == [("handshake", 404, "SUB-521")]
