"""OAuth: authorize, code exchange with PKCE, refresh with grace, revoke, REST bearer errors."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from .conftest import CLIENT_ID, CLIENT_SECRET, EXT, EXT2, REDIRECT, Emu, bearer, fixture, pkce

ME = "/restapi/v1.0/account/~/extension/~"


async def test_code_flow_with_s256_answers_a_token_like_the_fixture(emu: Emu) -> None:
    tokens = await emu.login()

    expected = fixture("oauth__token")
    assert set(tokens) == set(expected)
    assert tokens["token_type"] == "bearer"
    assert tokens["expires_in"] == 3600
    assert tokens["refresh_token_expires_in"] == 604800
    assert tokens["owner_id"] == EXT
    assert all(isinstance(tokens[k], type(expected[k])) for k in expected)
    me = await emu.client.get(ME, headers=bearer(tokens["access_token"]))
    assert me.status_code == 200
    assert me.json()["id"] == int(EXT)


async def test_plain_challenge_and_form_client_credentials(emu: Emu) -> None:
    code, verifier = await emu.authorize(method="plain")
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT,
        "code_verifier": verifier,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
    }
    r = await emu.token(form, auth=None)
    assert r.status_code == 200, r.text


async def test_wrong_verifier_is_refused_and_consumes_the_code(emu: Emu) -> None:
    code, verifier = await emu.authorize()
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT}
    wrong = await emu.token(form | {"code_verifier": pkce()[0]})
    assert wrong.status_code == 400
    assert wrong.json()["error"] == "invalid_grant"
    assert wrong.json()["errors"][0]["errorCode"] == "OAU-106"
    again = await emu.token(form | {"code_verifier": verifier})
    assert again.json()["errors"][0]["errorCode"] == "OAU-106"


async def test_code_is_single_use(emu: Emu) -> None:
    code, verifier = await emu.authorize()
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT, "code_verifier": verifier}
    assert (await emu.token(form)).status_code == 200
    reused = await emu.token(form)
    assert reused.status_code == 400
    assert reused.json()["errors"] == [{"errorCode": "OAU-106", "message": "Invalid authorization code"}]


async def test_expired_code(emu: Emu) -> None:
    code, verifier = await emu.authorize()
    await emu.advance(61)
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT, "code_verifier": verifier}
    r = await emu.token(form)
    assert r.status_code == 400
    assert r.json()["errors"][0]["errorCode"] == "OAU-108"


async def test_redirect_mismatch_at_authorize_and_at_token(emu: Emu) -> None:
    r = await emu.client.get(
        "/restapi/oauth/authorize",
        params={"response_type": "code", "client_id": CLIENT_ID, "redirect_uri": "http://evil.test/cb"},
    )
    assert r.status_code == 400
    assert r.json()["errors"][0]["errorCode"] == "OAU-109"
    code, verifier = await emu.authorize()
    form = {"grant_type": "authorization_code", "code": code, "code_verifier": verifier}
    r = await emu.token(form | {"redirect_uri": REDIRECT + "/other"})
    assert r.json()["errors"][0]["errorCode"] == "OAU-109"


async def test_bad_client(emu: Emu) -> None:
    code, verifier = await emu.authorize()
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT, "code_verifier": verifier}
    wrong_secret = await emu.token(form, auth=(CLIENT_ID, "nope"))
    assert wrong_secret.status_code == 401
    assert wrong_secret.json()["error"] == "invalid_client"
    assert wrong_secret.json()["errors"][0]["errorCode"] == "OAU-123"
    unknown = await emu.token(form, auth=("who", "x"))
    assert unknown.status_code == 401
    assert unknown.json()["errors"][0]["errorCode"] == "OAU-153"
    authorize = await emu.client.get(
        "/restapi/oauth/authorize", params={"response_type": "code", "client_id": "who", "redirect_uri": REDIRECT}
    )
    assert authorize.status_code == 400
    assert authorize.json()["errors"][0]["errorCode"] == "OAU-153"


async def test_refresh_is_single_use_with_a_grace_window(emu: Emu) -> None:
    first = await emu.login()
    form = {"grant_type": "refresh_token", "refresh_token": first["refresh_token"]}
    second = (await emu.token(form)).json()
    assert second["access_token"] != first["access_token"]
    assert second["refresh_token"] != first["refresh_token"]
    # The previous access token dies at once.
    old = await emu.client.get(ME, headers=bearer(first["access_token"]))
    assert old.status_code == 401
    assert old.json()["errorCode"] == "OAU-213"
    # Within the grace window the old refresh token answers with the same new pair.
    await emu.advance(9)
    again = (await emu.token(form)).json()
    assert (again["access_token"], again["refresh_token"]) == (second["access_token"], second["refresh_token"])
    assert (await emu.client.get(ME, headers=bearer(second["access_token"]))).status_code == 200
    # After it, the old refresh token is dead and answers exactly like the fixture.
    await emu.advance(2)
    dead = await emu.token(form)
    assert dead.status_code == 400
    assert dead.json() == fixture("oauth__error_invalid_grant")
    # The new refresh token still works.
    third = await emu.token({"grant_type": "refresh_token", "refresh_token": second["refresh_token"]})
    assert third.status_code == 200


async def test_refresh_token_expires_after_its_ttl(emu: Emu) -> None:
    code, verifier = await emu.authorize()
    r = await emu.token(
        {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "code_verifier": verifier,
            "access_token_ttl": "600",
            "refresh_token_ttl": "3600",
        }
    )
    tokens = r.json()
    assert (tokens["expires_in"], tokens["refresh_token_expires_in"]) == (600, 3600)
    await emu.advance(3601)
    r = await emu.token({"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]})
    assert r.json()["errors"][0]["errorCode"] == "OAU-210"


async def test_revoke_ends_the_whole_session(emu: Emu) -> None:
    tokens = await emu.login()
    r = await emu.client.post("/restapi/oauth/revoke", data={"token": tokens["access_token"]})
    assert r.status_code == 200
    assert r.content == b""
    assert (await emu.client.get(ME, headers=bearer(tokens["access_token"]))).json()["errorCode"] == "OAU-213"
    refreshed = await emu.token({"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]})
    assert refreshed.json()["error"] == "invalid_grant"


async def test_expired_and_unknown_bearer(emu: Emu) -> None:
    tokens = await emu.login()
    unknown = await emu.client.get(ME, headers=bearer("nope"))
    assert unknown.status_code == 401
    assert unknown.json()["errorCode"] == "OAU-213"
    assert unknown.json()["message"] == "Token not found"
    await emu.advance(3600)
    expired = await emu.client.get(ME, headers=bearer(tokens["access_token"]))
    assert expired.status_code == 401
    assert expired.json()["errors"] == [{"errorCode": "OAU-128", "message": "Access token expired"}]


async def test_login_hint_next_login_and_deny(emu: Emu) -> None:
    assert (await emu.login(login_hint="102"))["owner_id"] == EXT2
    r = await emu.client.post("/_emulator/oauth/next-login", json={"extensionId": EXT2})
    assert r.status_code == 200
    assert (await emu.login())["owner_id"] == EXT2
    assert (await emu.login())["owner_id"] == EXT  # one-shot
    await emu.client.post("/_emulator/oauth/deny-next")
    r = await emu.client.get(
        "/restapi/oauth/authorize",
        params={"response_type": "code", "client_id": CLIENT_ID, "redirect_uri": REDIRECT, "state": "s"},
    )
    assert r.status_code == 302
    query = parse_qs(urlsplit(r.headers["location"]).query)
    assert query["error"] == ["access_denied"]
    assert query["state"] == ["s"]
    assert "error_description" in query


async def test_redirect_carries_expires_in_and_wildcard_client(emu: Emu) -> None:
    r = await emu.client.get(
        "/restapi/oauth/authorize",
        params={"response_type": "code", "client_id": "any-client", "redirect_uri": "http://127.0.0.1:5123/cb"},
    )
    assert r.status_code == 302
    location = r.headers["location"]
    assert location.startswith("http://127.0.0.1:5123/cb?code=")
    assert parse_qs(urlsplit(location).query)["expires_in"] == ["60"]


async def test_unsupported_grants(emu: Emu) -> None:
    jwt = await emu.token({"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": "x"})
    assert jwt.status_code == 400
    assert jwt.json()["error"] == "unsupported_grant_type"
