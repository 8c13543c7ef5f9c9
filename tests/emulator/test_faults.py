"""Fault injection through the control API: every kind, deterministic probabilities."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from gravity_sms.emulator import EmulatorConfig

from .conftest import EXT, SMS_NUMBER, Emu, bearer, create_emu

ME = "/restapi/v1.0/account/~/extension/~"
SMS = f"{ME}/sms"


async def _fault(emu: Emu, body: object) -> None:
    r = await emu.client.post("/_emulator/faults", json=body)
    assert r.status_code == 200, r.text


async def test_latency(emu: Emu) -> None:
    token = (await emu.login())["access_token"]
    await _fault(emu, {"latency": {"seconds": 0.05, "path": "/restapi/v1.0/*"}})
    started = time.monotonic()
    assert (await emu.client.get(ME, headers=bearer(token))).status_code == 200
    assert time.monotonic() - started >= 0.05


async def test_next_n_server_errors(emu: Emu) -> None:
    token = (await emu.login())["access_token"]
    await _fault(emu, {"serverError": {"count": 2, "status": 503, "path": ME}})
    first = await emu.client.get(ME, headers=bearer(token))
    assert first.status_code == 503
    assert first.json()["errorCode"] == "CMN-211"
    assert first.json()["errors"][0]["errorCode"] == "CMN-211"
    assert (await emu.client.get(ME, headers=bearer(token))).status_code == 503
    assert (await emu.client.get(ME, headers=bearer(token))).status_code == 200
    # The control API is never faulted.
    assert (await emu.client.get("/_emulator/state")).status_code == 200


async def test_probability_is_deterministic(config: EmulatorConfig) -> None:
    outcomes = []
    for _ in range(2):
        async with create_emu(config, enforce_rate_limits=False) as emu:
            token = (await emu.login())["access_token"]
            await _fault(emu, {"seed": 7, "serverError": {"probability": 0.5, "path": ME}})
            outcomes.append([(await emu.client.get(ME, headers=bearer(token))).status_code for _ in range(20)])
    assert outcomes[0] == outcomes[1]
    assert 0 < outcomes[0].count(503) < 20


async def test_rate_limit_burst_with_retry_after(emu: Emu) -> None:
    token = (await emu.login())["access_token"]
    await _fault(emu, {"rateLimit": {"count": 2, "retryAfter": 7}})
    for _ in range(2):
        r = await emu.client.get(ME, headers=bearer(token))
        assert r.status_code == 429
        assert r.headers["Retry-After"] == "7"
        assert r.json()["errorCode"] == "CMN-301"
    assert (await emu.client.get(ME, headers=bearer(token))).status_code == 200


async def test_hang_outlasts_the_client(emu: Emu) -> None:
    token = (await emu.login())["access_token"]
    await _fault(emu, {"hang": {"path": ME}})
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(emu.client.get(ME, headers=bearer(token)), timeout=0.2)
    assert (await emu.client.get(ME, headers=bearer(token))).status_code == 200


async def test_drop_connection(emu: Emu) -> None:
    token = (await emu.login())["access_token"]
    await _fault(emu, {"drop": {"count": 1, "method": "GET"}})
    with pytest.raises(httpx.RemoteProtocolError):
        await emu.client.get(ME, headers=bearer(token))
    assert (await emu.client.get(ME, headers=bearer(token))).status_code == 200
    logged = (await emu.client.get("/_emulator/requests", params={"path": ME})).json()["requests"]
    assert [r["outcome"] for r in logged] == ["drop", "answered"]


async def test_garble_handles_the_request_but_cuts_the_answer(emu: Emu) -> None:
    token = (await emu.login())["access_token"]
    await _fault(emu, {"garble": {"path": SMS, "method": "POST"}})
    sms = {"from": {"phoneNumber": SMS_NUMBER}, "to": [{"phoneNumber": "+15551234567"}], "text": "accepted"}
    r = await emu.client.post(SMS, json=sms, headers=bearer(token))
    assert r.status_code == 200
    assert int(r.headers["content-length"]) == len(r.content) > 0
    with pytest.raises(ValueError):
        r.json()
    # RingCentral did accept it: the SMS exists and the message store lists it.
    [created] = (await emu.client.get("/_emulator/sms")).json()["sms"]
    assert created["text"] == "accepted"
    assert r.content.startswith(b"{"), "the first half of RingCentral's JSON answer"
    # Fired once: the next answer is whole.
    again = await emu.client.post(SMS, json=sms, headers=bearer(token))
    assert again.json()["subject"] == "accepted"
    logged = (await emu.client.get("/_emulator/requests", params={"path": SMS})).json()["requests"]
    assert [(r["status"], r["outcome"]) for r in logged] == [(200, "garble"), (200, "answered")]


async def test_expire_all_access_tokens(emu: Emu) -> None:
    token = (await emu.login())["access_token"]
    await _fault(emu, {"expireAccessTokens": True})
    r = await emu.client.get(ME, headers=bearer(token))
    assert r.json()["errorCode"] == "OAU-128"


async def test_revoke_refresh_token_keeps_the_access_token(emu: Emu) -> None:
    tokens = await emu.login()
    await _fault(emu, {"revokeRefreshToken": {"extensionId": EXT}})
    assert (await emu.client.get(ME, headers=bearer(tokens["access_token"]))).status_code == 200
    r = await emu.token({"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]})
    assert r.status_code == 400
    assert r.json()["errors"][0]["errorCode"] == "OAU-210"


async def test_blacklist_and_delete_subscription(emu: Emu) -> None:
    token = (await emu.login())["access_token"]
    first = (await emu.subscribe(token)).json()["id"]
    second = (await emu.subscribe(token)).json()["id"]
    await _fault(emu, {"blacklistSubscription": first, "deleteSubscription": {"id": second}})
    one = (await emu.client.get(f"/restapi/v1.0/subscription/{first}", headers=bearer(token))).json()
    assert one["status"] == "Blacklisted"
    assert one["blacklistedData"]["blacklistedAt"]
    gone = await emu.client.get(f"/restapi/v1.0/subscription/{second}", headers=bearer(token))
    assert gone.status_code == 404


async def test_clear_and_list_faults(emu: Emu) -> None:
    await _fault(emu, {"serverError": {"count": 3}, "deliveryFailure": {"to": "+15551234567"}})
    listed = (await emu.client.get("/_emulator/faults")).json()
    assert listed["routes"][0]["kind"] == "serverError"
    assert listed["deliveryFailures"][0]["errorCode"] == "SMS-CAR-450"
    assert (await emu.client.delete("/_emulator/faults")).json() == {"routes": [], "deliveryFailures": []}
    unknown = await emu.client.post("/_emulator/faults", json={"meteor": True})
    assert unknown.status_code == 400
