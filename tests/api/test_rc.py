"""The connect flow routes of api.md §9 against the emulator (in-process), and what they store."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import func, select

from gravity_sms.store import Database
from gravity_sms.store.tables import oauth_states, rc_extensions, rc_phone_numbers, rc_subscriptions
from tests.conftest import Actor
from tests.rc_support import EXT, EXT2, MAIN_NUMBER, OTHER_NUMBER, SMS_NUMBER, Stack, actor, in_process_stack


@pytest.fixture
async def stack(database: Database, tmp_path: Path) -> AsyncIterator[Stack]:
    async with in_process_stack(database, tmp_path) as s:
        yield s


@pytest.fixture
async def acme(stack: Stack) -> Actor:
    return await actor(stack.gw, "Acme")


async def counts(stack: Stack) -> dict[str, int]:
    out = {}
    async with stack.gw.db.read() as conn:
        for table in (rc_extensions, rc_phone_numbers, rc_subscriptions):
            out[table.name] = int((await conn.execute(select(func.count()).select_from(table))).scalar() or 0)
    return out


async def test_connect_flow_stores_tokens_numbers_and_a_subscription(stack: Stack, acme: Actor) -> None:
    r = await stack.api.post("/v1/rc/connect-token", headers=acme.headers)
    assert r.status_code == 200
    assert r.json()["connectUrl"].startswith("/v1/rc/connect?token=")
    await stack.connect(acme)

    status = (await stack.api.get("/v1/rc/status", headers=acme.headers)).json()
    assert status["connected"] is True and status["rcAccountId"] == "402118231008"
    assert status["expiresAt"].endswith("Z")
    [ext] = status["extensions"]
    assert ext["extensionId"] == EXT and ext["status"] == "connected" and ext["error"] is None
    assert sorted(ext["phoneNumbers"]) == sorted([SMS_NUMBER, MAIN_NUMBER])
    assert ext["subscriptionExpiresAt"] is not None

    numbers = (await stack.api.get("/v1/rc/phone-numbers", headers=acme.headers)).json()["phoneNumbers"]
    by_number = {n["phoneNumber"]: n for n in numbers}
    assert by_number[SMS_NUMBER]["smsEnabled"] is True and by_number[MAIN_NUMBER]["smsEnabled"] is False
    assert by_number[SMS_NUMBER]["extensionId"] == EXT and "SmsSender" in by_number[SMS_NUMBER]["features"]

    # The subscription at RingCentral: our webhook, instant SMS + the expiry reminder, 7 days,
    # a verification token — and the handshake really reached the gateway's webhook route.
    [sub] = stack.emu_state.subscriptions.values()
    assert sub.address == "http://gateway.test/v1/webhooks/ringcentral"
    assert sub.requested_filters == [
        "/restapi/v1.0/account/~/extension/~/message-store/instant?type=SMS",
        "/restapi/v1.0/subscription/~?threshold=86400&interval=3600",
    ]
    assert sub.expires_in == 604800 and sub.verification_token
    handshakes = [d for d in stack.emu_state.deliveries if d.kind == "handshake"]
    assert [(d.status, d.error) for d in handshakes] == [(200, None)]
    # Only the hash of the verification token is stored.
    stored = await stack.gw.store.connections.get_subscription(sub.id)
    assert stored.verification_token_hash == stack.gw.box.hash(sub.verification_token)

    # PKCE S256 and the exact redirect URI went to RingCentral.
    [token_call] = await stack.requests("/restapi/oauth/token")
    assert token_call["form"]["grant_type"] == "authorization_code"
    assert token_call["form"]["redirect_uri"] == "http://gateway.test/v1/rc/callback"
    assert token_call["authorization"] == "Basic"


async def test_inbound_sms_reaches_the_gateway_through_the_subscription(stack: Stack, acme: Actor) -> None:
    await stack.connect(acme)
    r = await stack.emu.post("/_emulator/inbound", json={"from": "+15551234567", "to": SMS_NUMBER, "text": "hi"})
    assert r.status_code == 200, r.text
    assert [d["status"] for d in r.json()["deliveries"]] == [200]
    msgs = (await stack.api.get("/v1/sms/messages", headers=acme.headers, params={"direction": "inbound"})).json()
    assert [(m["from"], m["to"], m["body"]) for m in msgs["messages"]] == [("+15551234567", SMS_NUMBER, "hi")]


async def test_connect_redirect_carries_pkce_and_state(stack: Stack, acme: Actor) -> None:
    url = (await stack.api.post("/v1/rc/connect-token", headers=acme.headers)).json()["connectUrl"]
    token = parse_qs(urlsplit(url).query)["token"][0]
    page = await stack.api.get(url)
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "Connect RingCentral" in page.text and f'value="{token}"' in page.text
    assert page.headers["content-security-policy"] == (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self' http://emulator.test"
    )
    # GET does not consume: a second GET still shows the form, then the POST works once.
    assert (await stack.api.get(url)).status_code == 200
    r = await stack.api.post("/v1/rc/connect", data={"token": token})
    assert r.status_code == 303
    location = urlsplit(r.headers["location"])
    assert (location.netloc, location.path) == ("emulator.test", "/restapi/oauth/authorize")
    q = {k: v[0] for k, v in parse_qs(location.query).items()}
    assert q["response_type"] == "code" and q["client_id"] == "gw-client"
    assert q["redirect_uri"] == "http://gateway.test/v1/rc/callback"
    assert q["code_challenge_method"] == "S256" and len(q["code_challenge"]) == 43 and len(q["state"]) >= 32
    async with stack.gw.db.read() as conn:
        [row] = (await conn.execute(select(oauth_states))).all()
    assert row.state_hash == stack.gw.box.hash(q["state"]) and q["state"] not in row.code_verifier_enc
    again = await stack.api.post("/v1/rc/connect", data={"token": token})
    assert again.status_code == 400 and "text/html" in again.headers["content-type"]


@pytest.mark.parametrize("query", ["", "?token=", "?token=not-a-real-token"])
async def test_connect_page_with_a_missing_or_unknown_token_is_an_html_400(stack: Stack, query: str) -> None:
    r = await stack.api.get(f"/v1/rc/connect{query}")
    assert r.status_code == 400 and "text/html" in r.headers["content-type"]
    r = await stack.api.post("/v1/rc/connect", data={"token": query.partition("=")[2]})
    assert r.status_code == 400 and "text/html" in r.headers["content-type"]


async def test_expired_connect_token_is_refused(stack: Stack, acme: Actor) -> None:
    url = (await stack.api.post("/v1/rc/connect-token", headers=acme.headers)).json()["connectUrl"]
    stack.clock.advance(301)
    assert (await stack.api.get(url)).status_code == 400
    invite = (await stack.api.post("/v1/rc/invite-token", headers=acme.headers)).json()
    assert invite["expiresIn"] == 1800
    stack.clock.advance(1700)
    assert (await stack.api.get(invite["inviteUrl"])).status_code == 200
    stack.clock.advance(101)
    assert (await stack.api.get(invite["inviteUrl"])).status_code == 400


async def test_invite_connects_a_second_extension_of_the_same_tenant(stack: Stack, acme: Actor) -> None:
    await stack.connect(acme)
    await stack.connect(acme, EXT2, kind="invite-token")
    status = (await stack.api.get("/v1/rc/status", headers=acme.headers)).json()
    assert sorted(e["extensionId"] for e in status["extensions"]) == sorted([EXT, EXT2])
    assert await stack.gw.connections.connected_extensions(acme.tenant_id) == [EXT, EXT2]
    found = await stack.gw.connections.find_number(acme.tenant_id, OTHER_NUMBER)
    assert (found.extension_id, found.sms_enabled) == (EXT2, True)
    assert await stack.gw.connections.find_number(acme.tenant_id, "+15550000000") is None


async def test_reconnecting_replaces_the_subscription(stack: Stack, acme: Actor) -> None:
    await stack.connect(acme)
    [first] = stack.emu_state.subscriptions
    await stack.connect(acme)
    assert first not in stack.emu_state.subscriptions and len(stack.emu_state.subscriptions) == 1
    [row] = await stack.gw.store.connections.extension_subscriptions(acme.tenant_id, EXT)
    assert row.id in stack.emu_state.subscriptions


CALLBACK_ERRORS = [
    ("", "Missing code or state parameter"),
    ("?code=abc", "Missing code or state parameter"),
    ("?state=abc", "Missing code or state parameter"),
    ("?code=abc&state=forged", "Invalid or expired state"),
]


@pytest.mark.parametrize(("query", "message"), CALLBACK_ERRORS)
async def test_callback_bad_parameters_store_nothing(stack: Stack, query: str, message: str) -> None:
    r = await stack.api.get(f"/v1/rc/callback{query}")
    assert r.status_code == 400 and r.json() == {"error": message}
    assert await counts(stack) == {"rc_extensions": 0, "rc_phone_numbers": 0, "rc_subscriptions": 0}


async def test_callback_with_an_expired_state_stores_nothing(stack: Stack, acme: Actor) -> None:
    callback = urlsplit(await stack.start_connect(acme))
    stack.clock.advance(601)
    r = await stack.api.get(f"{callback.path}?{callback.query}&format=json")
    assert r.status_code == 400 and r.json() == {"error": "Invalid or expired state"}
    assert await counts(stack) == {"rc_extensions": 0, "rc_phone_numbers": 0, "rc_subscriptions": 0}


async def test_callback_with_a_refused_code_stores_nothing(stack: Stack, acme: Actor) -> None:
    callback = urlsplit(await stack.start_connect(acme))
    q = parse_qs(callback.query)
    r = await stack.api.get("/v1/rc/callback", params={"code": "not-the-code", "state": q["state"][0]})
    assert r.status_code == 400 and r.json() == {"error": "RingCentral authorization failed"}
    assert await counts(stack) == {"rc_extensions": 0, "rc_phone_numbers": 0, "rc_subscriptions": 0}
    # The state was single use: the real code with the same state is refused too.
    r = await stack.api.get(f"{callback.path}?{callback.query}")
    assert r.json() == {"error": "Invalid or expired state"}


async def test_callback_with_a_refusal_from_ringcentral_shows_it(stack: Stack, acme: Actor) -> None:
    await stack.emu.post("/_emulator/oauth/deny-next")
    callback = urlsplit(await stack.start_connect(acme))
    assert "error=access_denied" in callback.query
    page = await stack.api.get(f"{callback.path}?{callback.query}")
    assert page.status_code == 400 and "denied access" in page.text
    as_json = await stack.api.get(f"{callback.path}?{callback.query}&format=json")
    assert as_json.json() == {"error": "RingCentral authorization failed"}
    assert await counts(stack) == {"rc_extensions": 0, "rc_phone_numbers": 0, "rc_subscriptions": 0}


async def test_callback_html_page(stack: Stack, acme: Actor) -> None:
    callback = urlsplit(await stack.start_connect(acme))
    page = await stack.api.get(f"{callback.path}?{callback.query}")
    assert page.status_code == 200 and "RingCentral connected" in page.text and EXT in page.text


async def test_disconnect_deletes_subscription_revokes_and_clears(stack: Stack, acme: Actor) -> None:
    await stack.connect(acme)
    r = await stack.api.post("/v1/rc/disconnect", headers=acme.headers)
    assert r.status_code == 200 and r.json() == {"ok": True}
    assert stack.emu_state.subscriptions == {}
    assert len(await stack.requests("/restapi/oauth/revoke")) == 1
    assert not [s for s in stack.emu_state.sessions.values() if not s.ended]
    assert await counts(stack) == {"rc_extensions": 0, "rc_phone_numbers": 0, "rc_subscriptions": 0}
    assert (await stack.api.get("/v1/rc/status", headers=acme.headers)).json() == {"connected": False}
    assert (await stack.api.get("/v1/rc/phone-numbers", headers=acme.headers)).json() == {"phoneNumbers": []}
    again = await stack.api.post("/v1/rc/disconnect", headers=acme.headers)
    assert again.status_code == 200 and again.json() == {"ok": True}


async def test_tenants_see_only_their_own_connection(stack: Stack, acme: Actor) -> None:
    other = await actor(stack.gw, "Other")
    await stack.connect(acme)
    assert (await stack.api.get("/v1/rc/status", headers=other.headers)).json() == {"connected": False}
    assert (await stack.api.get("/v1/rc/phone-numbers", headers=other.headers)).json() == {"phoneNumbers": []}
    await stack.api.post("/v1/rc/disconnect", headers=other.headers)
    assert (await stack.api.get("/v1/rc/status", headers=acme.headers)).json()["connected"] is True


@pytest.mark.parametrize("path", ["/v1/rc/connect-token", "/v1/rc/invite-token", "/v1/rc/disconnect"])
async def test_authenticated_routes_need_a_key(stack: Stack, path: str) -> None:
    r = await stack.api.post(path)
    assert r.status_code == 401 and r.json() == {"error": "Missing or invalid API key"}


async def test_at_most_100_link_tokens_per_tenant_per_hour(stack: Stack, acme: Actor) -> None:
    limiter: Any = stack.gw.limiter
    for i in range(100):
        kind = "connect-token" if i % 2 else "invite-token"
        r = await stack.api.post(f"/v1/rc/{kind}", headers=acme.headers)
        assert r.status_code == 200, (i, r.text)
        await limiter.reset(f"ratelimit:{stack.gw.box.hash(acme.key)}")  # the per-key API limit is not under test
    r = await stack.api.post("/v1/rc/connect-token", headers=acme.headers)
    assert r.status_code == 429 and r.json() == {"error": "Too many requests"} and int(r.headers["retry-after"]) > 0
    other = await actor(stack.gw, "Other")
    assert (await stack.api.post("/v1/rc/connect-token", headers=other.headers)).status_code == 200
    stack.clock.advance(3601)
    assert (await stack.api.post("/v1/rc/connect-token", headers=acme.headers)).status_code == 200


async def test_database_file_holds_no_plaintext_token(tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'scan.db'}")
    await database.create_all()
    async with in_process_stack(database, tmp_path) as stack:
        acme = await actor(stack.gw, "Acme")
        await stack.connect(acme)
        tokens = []
        for session in stack.emu_state.sessions.values():
            tokens += [session.access_token, session.refresh_token]
        sub_tokens = [s.verification_token for s in stack.emu_state.subscriptions.values()]
    await database.dispose()
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("scan.db*"))
    assert raw, "no database file found"
    for secret in [*tokens, *sub_tokens]:
        assert secret and secret.encode() not in raw
