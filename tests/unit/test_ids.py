"""Identifier formats of api.md §1."""

from __future__ import annotations

import base64

import pytest

from gravity_sms.domain import ids


@pytest.mark.parametrize(
    ("make", "check", "pattern"),
    [
        (ids.new_tenant_id, ids.is_tenant_id, ids.TENANT_RE),
        (ids.new_app_id, ids.is_app_id, ids.APP_RE),
        (ids.new_message_id, ids.is_message_id, ids.MESSAGE_RE),
        (ids.new_trigger_id, ids.is_trigger_id, ids.TRIGGER_RE),
        (ids.new_api_key, None, ids.API_KEY_RE),
        (ids.new_ws_token, None, ids.WS_TOKEN_RE),
    ],
)
def test_generated_ids_match_their_format_and_differ(make, check, pattern) -> None:  # type: ignore[no-untyped-def]
    values = {make() for _ in range(200)}
    assert len(values) == 200
    for value in values:
        assert pattern.match(value)
        if check is not None:
            assert check(value)


@pytest.mark.parametrize(
    ("check", "value"),
    [
        (ids.is_tenant_id, "tenant_0123456789abcdeF"),
        (ids.is_tenant_id, "tenant_0123456789abcde"),
        (ids.is_tenant_id, "app_0123456789abcdef"),
        (ids.is_tenant_id, None),
        (ids.is_tenant_id, 42),
        (ids.is_app_id, "app_0123456789abcdef0"),
        (ids.is_app_id, "app_0123456789abcdef\n"),
        (ids.is_app_id, "../app_0123456789abcdef"),
        (ids.is_message_id, "msg_0123456789ab0"),
        (ids.is_trigger_id, "trg_xyz"),
    ],
)
def test_malformed_ids_are_refused(check, value) -> None:  # type: ignore[no-untyped-def]
    assert not check(value)


def test_webhook_secret_is_standard_webhooks_format() -> None:
    secret = ids.new_webhook_secret()
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"), validate=True)) == 32


def test_api_key_prefix_is_first_eight_characters() -> None:
    key = ids.new_api_key()
    assert ids.api_key_prefix(key) == key[:8] and key[:4] == "sgw_"


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("+15551234567", True),
        ("+441234567890", True),
        ("+123456789", True),
        ("+1234567890123456", False),
        ("+12345678", False),
        ("+05551234567", False),
        ("15551234567", False),
        ("+1555123456a", False),
        ("+15551234567\n", False),
        ("+1555123456\u0663", False),  # an Arabic-Indic digit
        (15551234567, False),
    ],
)
def test_e164(value: object, ok: bool) -> None:
    assert ids.is_e164(value) is ok
