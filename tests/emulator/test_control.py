"""The control API: state, request and SMS logs without secrets, seed, reset, the manual page."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from gravity_sms.emulator import EmulatorConfig

from .conftest import CLIENT_ID, EXT, EXT2, REDIRECT, SEED, Emu, bearer, create_emu


async def test_state_shows_subscriptions_and_token_counts_but_no_tokens(emu: Emu) -> None:
    tokens = await emu.login()
    sub = (await emu.subscribe(tokens["access_token"])).json()
    state = (await emu.client.get("/_emulator/state")).json()
    assert [e["id"] for e in state["accounts"][0]["extensions"]] == [EXT, EXT2]
    assert state["tokens"]["sessions"] == 1
    assert state["tokens"]["byExtension"] == {EXT: 1}
    listed = state["subscriptions"][0]
    assert (listed["id"], listed["status"], listed["extensionId"]) == (sub["id"], "Active", EXT)
    assert listed["address"] == "http://receiver.test/hook"
    assert listed["hasVerificationToken"] is True
    text = (await emu.client.get("/_emulator/state")).text
    for secret in (tokens["access_token"], tokens["refresh_token"], "vt-secret", "demo-secret"):
        assert secret not in text


async def test_request_log_redacts_secrets(emu: Emu) -> None:
    tokens = await emu.login()
    await emu.client.get("/restapi/v1.0/account/~/extension/~", headers=bearer(tokens["access_token"]))
    log = (await emu.client.get("/_emulator/requests")).json()["requests"]
    await emu.subscribe(tokens["access_token"])
    subscribed = (
        await emu.client.get("/_emulator/requests", params={"method": "POST", "path": "/restapi/v1.0/"})
    ).json()
    mode = subscribed["requests"][0]["json"]["deliveryMode"]
    assert mode == {
        "transportType": "WebHook",
        "address": "http://receiver.test/hook",
        "verificationToken": "<redacted>",
    }
    assert [(r["method"], r["path"]) for r in log] == [
        ("GET", "/restapi/oauth/authorize"),
        ("POST", "/restapi/oauth/token"),
        ("GET", "/restapi/v1.0/account/~/extension/~"),
    ]
    assert log[0]["query"]["client_id"] == CLIENT_ID
    assert log[1]["authorization"] == "Basic"
    assert log[1]["form"]["grant_type"] == "authorization_code"
    assert log[1]["form"]["code"] == "<redacted>"
    assert log[1]["form"]["code_verifier"] == "<redacted>"
    assert (log[2]["bearer"], log[2]["status"]) == (True, 200)
    text = (await emu.client.get("/_emulator/requests")).text
    for secret in (tokens["access_token"], "vt-secret", "demo-secret"):
        assert secret not in text
    since = (await emu.client.get("/_emulator/requests", params={"since": log[1]["seq"]})).json()["requests"]
    assert [r["path"] for r in since] == ["/restapi/v1.0/account/~/extension/~", "/restapi/v1.0/subscription"]
    await emu.client.delete("/_emulator/requests")
    assert (await emu.client.get("/_emulator/requests")).json()["requests"] == []


async def test_seed_adds_and_reset_returns_to_the_configured_seed(emu: Emu) -> None:
    extra = {
        "accounts": [{"id": "999", "extensions": [{"id": "9991", "phoneNumbers": [{"phoneNumber": "+15550009999"}]}]}]
    }
    r = await emu.client.post("/_emulator/seed", json=extra)
    assert r.json()["added"] == {"clients": 0, "accounts": 1, "extensions": 1, "phoneNumbers": 1}
    await emu.login()
    assert len((await emu.client.get("/_emulator/state")).json()["accounts"]) == 2
    await emu.advance(100)
    await emu.client.post("/_emulator/reset")
    state = (await emu.client.get("/_emulator/state")).json()
    assert [a["id"] for a in state["accounts"]] == [SEED["accounts"][0]["id"]]
    assert state["tokens"]["sessions"] == 0
    assert state["clockOffsetSeconds"] == 0
    bad = await emu.client.post("/_emulator/seed", json={"accounts": [{"extensions": []}]})
    assert bad.status_code == 400


async def test_control_token_expiry_and_subscription_endpoints(emu: Emu) -> None:
    token = (await emu.login())["access_token"]
    sub = (await emu.subscribe(token)).json()["id"]
    assert (await emu.client.post(f"/_emulator/subscriptions/{sub}/blacklist", json={"reason": "r"})).status_code == 200
    assert emu.state.subscriptions[sub].blacklisted_reason == "r"
    assert (await emu.client.delete(f"/_emulator/subscriptions/{sub}")).status_code == 200
    assert (await emu.client.delete(f"/_emulator/subscriptions/{sub}")).status_code == 404
    assert (await emu.client.post("/_emulator/tokens/expire")).json() == {"expired": 1}
    r = await emu.client.get("/restapi/v1.0/account/~/extension/~", headers=bearer(token))
    assert r.json()["errorCode"] == "OAU-128"


async def test_manual_approval_page(config: EmulatorConfig) -> None:
    async with create_emu(config, auto_approve=False) as emu:
        params = {"response_type": "code", "client_id": CLIENT_ID, "redirect_uri": REDIRECT, "state": "s1"}
        page = await emu.client.get("/restapi/oauth/authorize", params=params)
        assert page.status_code == 200
        assert "Approve" in page.text and "Deny" in page.text
        approved = await emu.client.post(
            "/restapi/oauth/authorize", data=params | {"decision": "approve", "extension_id": EXT2}
        )
        assert approved.status_code == 302
        code = parse_qs(urlsplit(approved.headers["location"]).query)["code"][0]
        tokens = await emu.token({"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT})
        assert tokens.json()["owner_id"] == EXT2
        denied = await emu.client.post("/restapi/oauth/authorize", data=params | {"decision": "deny"})
        assert parse_qs(urlsplit(denied.headers["location"]).query)["error"] == ["access_denied"]


async def test_clock_endpoint(emu: Emu) -> None:
    before = (await emu.client.get("/_emulator/clock")).json()
    after = await emu.advance(3600)
    assert after["offsetSeconds"] == before["offsetSeconds"] + 3600
    assert after["now"] > before["now"]
    assert (await emu.client.post("/_emulator/clock/advance", json={"seconds": -1})).status_code == 400


async def test_revoke_refresh_control_and_log_limit(config: EmulatorConfig) -> None:
    async with create_emu(config, log_limit=3) as emu:
        tokens = await emu.login()
        assert (await emu.client.post("/_emulator/tokens/revoke-refresh", json={})).json() == {"revoked": 1}
        r = await emu.token({"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]})
        assert r.json()["errors"][0]["errorCode"] == "OAU-210"
        for _ in range(3):
            await emu.client.get("/restapi/v1.0/account/~/extension/~", headers=bearer(tokens["access_token"]))
        log = (await emu.client.get("/_emulator/requests")).json()["requests"]
        assert [r["path"] for r in log] == ["/restapi/v1.0/account/~/extension/~"] * 3
