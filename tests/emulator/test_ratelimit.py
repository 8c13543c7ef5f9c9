"""Rate limits per user, app and group (ringcentral.md §6), headers and the penalty."""

from __future__ import annotations

from typing import Any

from gravity_sms.emulator import EmulatorConfig

from .conftest import CLIENT_ID, SMS_NUMBER, Emu, bearer, create_emu

SMS = "/restapi/v1.0/account/~/extension/~/sms"
HEADERS = ("X-Rate-Limit-Group", "X-Rate-Limit-Limit", "X-Rate-Limit-Remaining", "X-Rate-Limit-Window")


async def _send(emu: Emu, token: str) -> Any:
    body = {"from": {"phoneNumber": SMS_NUMBER}, "to": [{"phoneNumber": "+15551234567"}], "text": "x"}
    return await emu.client.post(SMS, json=body, headers=bearer(token))


async def test_the_41st_sms_in_a_minute_is_refused_with_msg_305(emu: Emu) -> None:
    token = (await emu.login())["access_token"]
    for i in range(40):
        r = await _send(emu, token)
        assert r.status_code == 200
        assert r.headers["X-Rate-Limit-Remaining"] == str(39 - i)
    limited = await _send(emu, token)
    assert limited.status_code == 429
    assert limited.json() == {
        "errorCode": "MSG-305",
        "message": "Request rate exceeded",
        "errors": [{"errorCode": "MSG-305", "message": "Request rate exceeded"}],
    }
    assert limited.headers["Retry-After"] == "60"
    assert limited.headers["X-Rate-Limit-Group"] == "Medium"
    assert limited.headers["X-Rate-Limit-Limit"] == "40"
    assert limited.headers["X-Rate-Limit-Remaining"] == "0"
    # Other groups keep their own budget.
    me = await emu.client.get("/restapi/v1.0/account/~/extension/~", headers=bearer(token))
    assert me.status_code == 200


async def test_every_request_during_the_penalty_restarts_it(emu: Emu) -> None:
    token = (await emu.login())["access_token"]
    for _ in range(40):
        await _send(emu, token)
    assert (await _send(emu, token)).status_code == 429
    for _ in range(3):
        await emu.advance(59)
        assert (await _send(emu, token)).status_code == 429
    await emu.advance(61)
    assert (await _send(emu, token)).status_code == 200


async def test_the_window_slides(emu: Emu) -> None:
    token = (await emu.login())["access_token"]
    for _ in range(40):
        await _send(emu, token)
    await emu.advance(60)
    assert (await _send(emu, token)).status_code == 200


async def test_headers_on_every_answer(emu: Emu) -> None:
    tokens = await emu.login()
    token = tokens["access_token"]
    answers = [
        await emu.client.get("/restapi/v1.0/account/~/extension/~", headers=bearer(token)),
        await emu.client.get("/restapi/v1.0/account/~/extension/~/phone-number", headers=bearer(token)),
        await emu.client.get("/restapi/v1.0/subscription", headers=bearer(token)),
        await emu.client.get("/restapi/v1.0/subscription/nope", headers=bearer(token)),
        await emu.client.get("/restapi/v1.0/account/~/extension/~", headers=bearer("unknown")),
        await _send(emu, token),
        await emu.token({"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}),
    ]
    groups = []
    for answer in answers:
        assert all(h in answer.headers for h in HEADERS), answer.headers
        assert answer.headers["X-Rate-Limit-Window"] == "60"
        groups.append(answer.headers["X-Rate-Limit-Group"])
    assert groups == ["Light", "Light", "Light", "Light", "Light", "Medium", "Auth"]


async def test_auth_group_allows_five_token_calls_per_client_and_user(emu: Emu) -> None:
    tokens = await emu.login()  # one
    refresh = tokens["refresh_token"]
    for _ in range(4):
        r = await emu.token({"grant_type": "refresh_token", "refresh_token": refresh})
        assert r.status_code == 200
        refresh = r.json()["refresh_token"]
    limited = await emu.token({"grant_type": "refresh_token", "refresh_token": refresh})
    assert limited.status_code == 429
    assert limited.json()["errorCode"] == "CMN-301"
    assert limited.headers["X-Rate-Limit-Group"] == "Auth"
    # Another user of the same app has a bucket of its own.
    other = await emu.login(login_hint="102")
    assert other["owner_id"] != tokens["owner_id"]
    assert CLIENT_ID


async def test_limits_are_configurable_and_can_be_switched_off(config: EmulatorConfig) -> None:
    async with create_emu(config, rate_limits={"Light": 2, "Medium": 1, "Heavy": 1, "Auth": 5}) as emu:
        token = (await emu.login())["access_token"]
        assert (await _send(emu, token)).status_code == 200
        assert (await _send(emu, token)).status_code == 429
    async with create_emu(config, enforce_rate_limits=False) as emu:
        token = (await emu.login())["access_token"]
        statuses = {(await _send(emu, token)).status_code for _ in range(45)}
        assert statuses == {200}
