"""RingCentralClient against a scripted transport: every call, every error mapping, no token in logs."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from gravity_sms.domain.clock import ManualClock
from gravity_sms.domain.errors import AuthExpired, ConnectionRevoked, ProviderError
from gravity_sms.domain.provider import ProviderCall, RateInfo
from gravity_sms.ringcentral import RingCentralClient
from gravity_sms.ringcentral.errors import map_error, parse_retry_after
from tests.ringcentral.scripted import Expect, Script, form

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "ringcentral"
SERVER = "https://rc.test"
ACCESS = "ACCESS-TOKEN-never-in-logs"
REFRESH = "REFRESH-TOKEN-never-in-logs"
SECRETS = (ACCESS, REFRESH, "client-secret-x", "U0pDMTFQMDFQQVMwMHxBQUFEUEdsZ2x6X2ZhY2Vfbm90X3JlYWw")
EXT = "/restapi/v1.0/account/~/extension/~"
RATE = {
    "X-Rate-Limit-Group": "Medium",
    "X-Rate-Limit-Limit": "40",
    "X-Rate-Limit-Remaining": "39",
    "X-Rate-Limit-Window": "60",
}


def fx(name: str) -> Any:
    return json.loads((FIXTURES / f"{name}.json").read_text())


class Harness:
    def __init__(self, caplog: pytest.LogCaptureFixture) -> None:
        self.caplog = caplog
        self.calls: list[ProviderCall] = []
        self.script = Script()
        self.clock = ManualClock(datetime(2026, 3, 1, 12, tzinfo=UTC))

    def client(self, *steps: Expect) -> RingCentralClient:
        self.script.steps.extend(steps)
        http = httpx.AsyncClient(transport=self.script.transport)
        return RingCentralClient(
            SERVER, "client-id-x", "client-secret-x", http=http, on_call=self.calls.append, clock=self.clock
        )


@pytest.fixture
async def h(caplog: pytest.LogCaptureFixture) -> AsyncIterator[Harness]:
    gravity = logging.getLogger("gravity")
    propagate, gravity.propagate = gravity.propagate, True  # captured even if logging was configured
    caplog.set_level(logging.DEBUG, logger="gravity")
    harness = Harness(caplog)
    try:
        yield harness
    finally:
        gravity.propagate = propagate
    harness.script.assert_done()
    # In teardown, caplog.records/.text hold the teardown phase only: read the call phase.
    records = caplog.get_records("call")
    if harness.calls:
        assert any(r.getMessage().startswith("rc.") for r in records), "the calls were not logged"
    dump = "".join(f"{r.getMessage()} {r.__dict__!r}" for r in records)
    for secret in SECRETS:
        assert secret not in dump, "a secret reached the logs"


def bearer(request: httpx.Request) -> None:
    assert request.headers["authorization"] == f"Bearer {ACCESS}"


def basic(request: httpx.Request) -> None:
    raw = base64.b64decode(request.headers["authorization"].removeprefix("Basic "))
    assert raw == b"client-id-x:client-secret-x"


def test_authorize_url_carries_pkce_s256() -> None:
    client = RingCentralClient(SERVER, "cid", "secret", http=httpx.AsyncClient())
    url = client.authorize_url(redirect_uri="http://gw/v1/rc/callback", state="st", code_challenge="ch")
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path) == ("https", "rc.test", "/restapi/oauth/authorize")
    assert parse_qs(parts.query) == {
        "response_type": ["code"],
        "client_id": ["cid"],
        "redirect_uri": ["http://gw/v1/rc/callback"],
        "state": ["st"],
        "code_challenge": ["ch"],
        "code_challenge_method": ["S256"],
    }


async def test_exchange_code_uses_basic_auth_and_form(h: Harness) -> None:
    def check(request: httpx.Request) -> None:
        basic(request)
        assert form(request) == {
            "grant_type": "authorization_code",
            "code": "the-code",
            "redirect_uri": "http://gw/cb",
            "code_verifier": "verifier",
        }

    client = h.client(Expect("POST", "/restapi/oauth/token", body=fx("oauth__token"), check=check))
    tokens = await client.exchange_code(code="the-code", redirect_uri="http://gw/cb", code_verifier="verifier")
    assert tokens.owner_id == "402118233008"
    assert tokens.expires_at == datetime(2026, 3, 1, 13, tzinfo=UTC)
    assert (tokens.refresh_expires_at - h.clock.now()).days == 7
    assert h.calls == [ProviderCall("oauth.exchange", 200, None)]


async def test_refresh_and_revoke(h: Harness) -> None:
    def check_refresh(request: httpx.Request) -> None:
        basic(request)
        assert form(request) == {"grant_type": "refresh_token", "refresh_token": REFRESH}

    def check_revoke(request: httpx.Request) -> None:
        basic(request)
        assert form(request) == {"token": ACCESS}

    client = h.client(
        Expect("POST", "/restapi/oauth/token", body=fx("oauth__token"), check=check_refresh),
        Expect("POST", "/restapi/oauth/revoke", check=check_revoke),
    )
    assert (await client.refresh(REFRESH)).access_token.startswith("U0pD")
    await client.revoke(ACCESS)


async def test_identity_calls(h: Harness) -> None:
    page1 = fx("phone_numbers") | {"paging": {"page": 1, "totalPages": 2, "perPage": 100}}
    page2 = {
        "records": [{"phoneNumber": "+15557770001", "features": ["SmsSender"], "id": 9}],
        "paging": {"page": 2, "totalPages": 2},
    }

    def page(n: int) -> Callable[[httpx.Request], None]:
        def check(request: httpx.Request) -> None:
            bearer(request)
            assert request.url.params["page"] == str(n) and request.url.params["perPage"] == "100"

        return check

    client = h.client(
        Expect("GET", EXT, body=fx("extension"), check=bearer),
        Expect("GET", f"{EXT}/phone-number", body=page1, check=page(1)),
        Expect("GET", f"{EXT}/phone-number", body=page2, check=page(2)),
    )
    ext = await client.get_extension(ACCESS)
    assert (ext.id, ext.account_id, ext.name) == ("402118233008", "402118231008", "Front Desk")
    numbers = await client.list_phone_numbers(ACCESS)
    assert [(n.phone_number, n.sms_enabled) for n in numbers] == [
        ("+15559876543", True),
        ("+15559870000", False),
        ("+15557770001", True),
    ]


async def test_subscription_calls(h: Harness) -> None:
    sub_id = "8c1d7e52-6a3f-4b0e-9d21-3f5a6b7c8d90"
    filters = ["/restapi/v1.0/account/~/extension/~/message-store/instant?type=SMS"]

    def check_create(request: httpx.Request) -> None:
        bearer(request)
        assert json.loads(request.content) == {
            "eventFilters": filters,
            "deliveryMode": {"transportType": "WebHook", "address": "https://gw/hook", "verificationToken": "vt"},
            "expiresIn": 604800,
        }

    client = h.client(
        Expect("POST", "/restapi/v1.0/subscription", body=fx("subscription__created"), check=check_create),
        Expect("GET", f"/restapi/v1.0/subscription/{sub_id}", body=fx("subscription__blacklisted_list")["records"][0]),
        Expect("POST", f"/restapi/v1.0/subscription/{sub_id}/renew", body=fx("subscription__created"), check=bearer),
        Expect("DELETE", f"/restapi/v1.0/subscription/{sub_id}", status=204, check=bearer),
    )
    created = await client.create_subscription(
        ACCESS, address="https://gw/hook", verification_token="vt", event_filters=filters, expires_in=604800
    )
    assert created.id == sub_id and created.status == "Active"
    assert created.expires_at == datetime(2026, 3, 8, 12, 0, 0, 177000, tzinfo=UTC)
    assert (await client.get_subscription(ACCESS, sub_id)).status == "Blacklisted"
    assert (await client.renew_subscription(ACCESS, sub_id)).status == "Active"
    await client.delete_subscription(ACCESS, sub_id)


async def test_sms_and_message_store_calls(h: Harness) -> None:
    def check_send(request: httpx.Request) -> None:
        bearer(request)
        assert json.loads(request.content) == {
            "from": {"phoneNumber": "+15559876543"},
            "to": [{"phoneNumber": "+15551234567"}],
            "text": "Hello",
        }

    def check_list(request: httpx.Request) -> None:
        assert dict(request.url.params) == {
            "messageType": "SMS",
            "perPage": "100",
            "page": "2",
            "direction": "Inbound",
            "dateFrom": "2026-03-01T10:00:00.000Z",
        }

    listing = {"records": [fx("event__instant_sms_inbound")["body"]], "paging": {"page": 2}}
    client = h.client(
        Expect("POST", f"{EXT}/sms", body=fx("sms__send_response"), headers=RATE, check=check_send),
        Expect("GET", f"{EXT}/message-store/2718281829001", body=fx("message__delivery_failed"), check=bearer),
        Expect("GET", f"{EXT}/message-store", body=listing, check=check_list),
    )
    sent = await client.send_sms(ACCESS, from_number="+15559876543", to_number="+15551234567", text="Hello")
    assert sent.message.id == "2718281829001" and sent.message.status == "Queued"
    assert sent.rate == RateInfo(group="Medium", limit=40, remaining=39, window=60)
    got = await client.get_message(ACCESS, "2718281829001")
    assert got.error_code == "SMS-CAR-450"
    listed = await client.list_messages(
        ACCESS, direction="Inbound", date_from=datetime(2026, 3, 1, 10, tzinfo=UTC), page=2
    )
    assert [m.id for m in listed] == ["2718281828459"]
    assert h.calls[0] == ProviderCall("sms.send", 200, RateInfo("Medium", 40, 39, 60))
    assert [c.operation for c in h.calls] == ["sms.send", "message.get", "message.list"]


# --- error mapping, table-driven ---------------------------------------------------------------
ERROR_CASES: list[tuple[str, int, Any, dict[str, str], type[ProviderError], str | None, bool, float | None]] = [
    ("expired access", 401, fx("error__auth_expired"), {}, AuthExpired, "OAU-128", True, None),
    (
        "unknown access",
        401,
        {"errorCode": "OAU-213", "message": "Token not found"},
        {},
        AuthExpired,
        "OAU-213",
        True,
        None,
    ),
    ("rate limited", 429, fx("error__rate_limited"), {"Retry-After": "7"}, ProviderError, "CMN-301", True, 7.0),
    ("rate limited, no header", 429, fx("error__rate_limited"), {}, ProviderError, "CMN-301", True, 30.0),
    (
        "sms rate limited",
        429,
        {"errorCode": "MSG-305", "message": "Request rate exceeded"},
        {},
        ProviderError,
        "MSG-305",
        True,
        30.0,
    ),
    (
        "unavailable",
        503,
        {"errorCode": "CMN-211", "message": "Service Temporary Unavailable"},
        {},
        ProviderError,
        "CMN-211",
        True,
        None,
    ),
    ("server error, no body", 500, None, {}, ProviderError, None, True, None),
    ("from not owned", 400, fx("error__from_not_owned"), {}, ProviderError, "MSG-245", False, None),
    ("errors[] only", 400, fx("error__errors_only"), {}, ProviderError, "MSG-243", False, None),
    (
        "forbidden feature",
        403,
        {"errorCode": "MSG-240", "message": "Feature not available"},
        {},
        ProviderError,
        "MSG-240",
        False,
        None,
    ),
    ("subscription missing", 404, fx("error__subscription_not_found"), {}, ProviderError, "CMN-102", False, None),
]


@pytest.mark.parametrize(
    ("status", "body", "headers", "kind", "code", "retryable", "retry_after"),
    [c[1:] for c in ERROR_CASES],
    ids=[c[0] for c in ERROR_CASES],
)
async def test_rest_errors_map_to_domain_errors(
    h: Harness,
    status: int,
    body: Any,
    headers: dict[str, str],
    kind: type[ProviderError],
    code: str | None,
    retryable: bool,
    retry_after: float | None,
) -> None:
    client = h.client(Expect("POST", f"{EXT}/sms", status=status, body=body, headers=headers))
    with pytest.raises(ProviderError) as info:
        await client.send_sms(ACCESS, from_number="+15559876543", to_number="+15551234567", text="x")
    err = info.value
    assert type(err) is kind
    assert (err.code, err.status, err.retryable, err.retry_after) == (code, status, retryable, retry_after)
    assert h.calls == [ProviderCall("sms.send", status, None)]


async def test_rejected_refresh_token_is_a_revoked_connection(h: Harness) -> None:
    client = h.client(Expect("POST", "/restapi/oauth/token", status=400, body=fx("oauth__error_invalid_grant")))
    with pytest.raises(ConnectionRevoked) as info:
        await client.refresh(REFRESH)
    assert (info.value.code, info.value.retryable) == ("OAU-210", False)


async def test_refused_code_is_not_a_revoked_connection(h: Harness) -> None:
    bad_code = {
        "error": "invalid_grant",
        "error_description": "Invalid authorization code",
        "errors": [{"errorCode": "OAU-106", "message": "Invalid authorization code"}],
    }
    client = h.client(
        Expect("POST", "/restapi/oauth/token", status=400, body=bad_code),
        Expect("POST", "/restapi/oauth/token", status=401, body=fx("oauth__error_invalid_client")),
    )
    with pytest.raises(ProviderError) as info:
        await client.exchange_code(code="c", redirect_uri="r", code_verifier="v")
    assert type(info.value) is ProviderError and info.value.code == "OAU-106" and not info.value.retryable
    with pytest.raises(ProviderError) as info:
        await client.refresh(REFRESH)
    assert type(info.value) is ProviderError and info.value.code == "OAU-153"


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (httpx.ConnectError("refused"), "connect-error"),
        (httpx.ReadTimeout("slow"), "timeout"),
        (httpx.RemoteProtocolError("dropped"), "connect-error"),
    ],
)
async def test_transport_failures_are_retryable(h: Harness, exc: Exception, code: str) -> None:
    client = h.client(Expect("GET", EXT, raises=exc))
    with pytest.raises(ProviderError) as info:
        await client.get_extension(ACCESS)
    assert (info.value.code, info.value.retryable, info.value.status) == (code, True, None)
    assert h.calls == [ProviderCall("extension.get", None, None)]


async def test_unreadable_answer_is_a_provider_error(h: Harness) -> None:
    client = h.client(Expect("GET", EXT, body={"unexpected": True}))
    with pytest.raises(ProviderError) as info:
        await client.get_extension(ACCESS)
    assert info.value.code == "bad-answer"


async def test_unreadable_answer_to_an_sms_is_retryable_and_keeps_its_status(h: Harness) -> None:
    # A 200 RingCentral sent: the SMS was accepted although its answer cannot be read. Whoever
    # retries must know it may have gone (the status says RingCentral answered with success).
    seen: list[httpx.Request] = []

    def truncated(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, content=b'{"id": 1724099032020, "uri": "https://pla', headers=RATE)

    http = httpx.AsyncClient(transport=httpx.MockTransport(truncated))
    client = RingCentralClient(SERVER, "client-id-x", "client-secret-x", http=http, on_call=h.calls.append)
    with pytest.raises(ProviderError) as info:
        await client.send_sms(ACCESS, from_number="+15559876543", to_number="+15551234567", text="hi")
    assert (info.value.code, info.value.status, info.value.retryable) == ("bad-answer", 200, True)
    assert [(r.method, r.url.path) for r in seen] == [("POST", f"{EXT}/sms")]
    assert h.calls == [ProviderCall("sms.send", 200, RateInfo("Medium", 40, 39, 60))]


def test_retry_after_forms() -> None:
    now = datetime(2026, 3, 1, 12, tzinfo=UTC)
    assert parse_retry_after("12") == 12.0
    assert parse_retry_after("Sun, 01 Mar 2026 12:00:20 GMT", now) == 20.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None
    assert map_error(status=429, body=None, headers={"retry-after": "bogus"}).retry_after == 30.0


async def test_on_call_failure_never_breaks_the_call(h: Harness) -> None:
    client = h.client(Expect("GET", EXT, body=fx("extension")))

    def broken(call: ProviderCall) -> None:
        raise RuntimeError("metrics down")

    client.on_call = broken
    assert (await client.get_extension(ACCESS)).id == "402118233008"
