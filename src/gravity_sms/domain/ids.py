"""Identifier formats of api.md §1: generation with a CSPRNG and validation by regex."""

from __future__ import annotations

import base64
import re
import secrets

# `\Z`, not `$` (which also matches before a trailing newline), and `[0-9]`, not `\d` (which
# also matches other scripts' digits).
TENANT_RE = re.compile(r"^tenant_[0-9a-f]{16}\Z")
APP_RE = re.compile(r"^app_[0-9a-f]{16}\Z")
MESSAGE_RE = re.compile(r"^msg_[0-9a-f]{12}\Z")
API_KEY_RE = re.compile(r"^sgw_[0-9a-f]{32}\Z")
WS_TOKEN_RE = re.compile(r"^wst_[0-9a-f]{64}\Z")
TRIGGER_RE = re.compile(r"^trg_[0-9a-f]{16}\Z")
E164_RE = re.compile(r"^\+[1-9][0-9]{8,14}\Z")


def new_tenant_id() -> str:
    return "tenant_" + secrets.token_hex(8)


def new_app_id() -> str:
    return "app_" + secrets.token_hex(8)


def new_message_id() -> str:
    return "msg_" + secrets.token_hex(6)


def new_api_key() -> str:
    return "sgw_" + secrets.token_hex(16)


def new_ws_token() -> str:
    return "wst_" + secrets.token_hex(32)


def new_trigger_id() -> str:
    return "trg_" + secrets.token_hex(8)


def new_webhook_secret() -> str:
    """Standard Webhooks secret: `whsec_` + base64 of 32 random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def api_key_prefix(api_key: str) -> str:
    return api_key[:8]


def is_e164(value: object) -> bool:
    return isinstance(value, str) and E164_RE.match(value) is not None


def is_tenant_id(value: object) -> bool:
    return isinstance(value, str) and TENANT_RE.match(value) is not None


def is_app_id(value: object) -> bool:
    return isinstance(value, str) and APP_RE.match(value) is not None


def is_message_id(value: object) -> bool:
    return isinstance(value, str) and MESSAGE_RE.match(value) is not None


def is_trigger_id(value: object) -> bool:
    return isinstance(value, str) and TRIGGER_RE.match(value) is not None
