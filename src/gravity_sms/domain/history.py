"""The message history: `GET /v1/sms/messages` and `GET /v1/sms/status/{id}` (api.md §5).

Owns query validation (`"<param> is invalid"`), tenant scoping (an app key sees its tenant,
an admin key all tenants or one), and paging rules. The store runs the query.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from gravity_sms.domain.clock import parse_iso
from gravity_sms.domain.errors import NotFound, ValidationFailed
from gravity_sms.domain.ids import is_e164, is_message_id, is_tenant_id
from gravity_sms.domain.models import MESSAGE_STATUSES, AuthContext, Message, Page

MAX_LIMIT = 100
DEFAULT_LIMIT = 20
MAX_PAGE = 1_000_000
_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@dataclass(frozen=True, slots=True)
class MessageQuery:
    tenant_id: str | None  # None: every tenant (admin)
    direction: str | None = None
    status: str | None = None
    from_number: str | None = None
    to_number: str | None = None
    start: datetime | None = None
    end: datetime | None = None
    page: int = 1
    limit: int = DEFAULT_LIMIT


class MessageHistoryStore(Protocol):
    async def get(self, message_id: str) -> Message | None: ...

    async def search(self, query: MessageQuery) -> tuple[list[Message], int]: ...


def _invalid(name: str) -> ValidationFailed:
    return ValidationFailed(f"{name} is invalid")


def _int(params: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = params.get(name)
    if raw is None:
        return default
    if not raw.strip().isdigit():
        raise _invalid(name)
    value = int(raw)
    if not low <= value <= high:
        raise _invalid(name)
    return value


def _number(params: Mapping[str, str], name: str) -> str | None:
    raw = params.get(name)
    if raw is None:
        return None
    # An unencoded `+` in a query string arrives as a space: take ` 1555…` as `+1555…`.
    value = "+" + raw[1:] if raw.startswith(" ") else raw
    if not is_e164(value):
        raise _invalid(name)
    return value


def _date(params: Mapping[str, str], name: str, *, end: bool) -> datetime | None:
    raw = params.get(name)
    if raw is None:
        return None
    text = raw.strip()
    # An unencoded `+` of a UTC offset arrives as a space.
    text = text[:11] + text[11:].replace(" ", "+")
    try:
        value = parse_iso(text)
    except ValueError:
        raise _invalid(name) from None
    if end and _DATE_ONLY.match(text):
        # An end date without a time includes that whole day.
        value += timedelta(days=1) - timedelta(microseconds=1)
    return value


def parse_query(caller: AuthContext, params: Mapping[str, str]) -> MessageQuery:
    direction = params.get("direction")
    if direction is not None and direction not in ("inbound", "outbound"):
        raise _invalid("direction")
    status = params.get("status")
    if status is not None and status not in MESSAGE_STATUSES:
        raise _invalid("status")
    tenant_id: str | None = caller.tenant_id
    if caller.is_admin:
        tenant_id = params.get("tenantId")
        if tenant_id is not None and not is_tenant_id(tenant_id):
            raise _invalid("tenantId")
    return MessageQuery(
        tenant_id=tenant_id,
        direction=direction,
        status=status,
        from_number=_number(params, "from"),
        to_number=_number(params, "to"),
        start=_date(params, "startDate", end=False),
        end=_date(params, "endDate", end=True),
        page=_int(params, "page", 1, 1, MAX_PAGE),
        limit=_int(params, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT),
    )


class MessageHistory:
    def __init__(self, store: MessageHistoryStore) -> None:
        self.store = store

    async def search(self, caller: AuthContext, params: Mapping[str, str]) -> Page:
        query = parse_query(caller, params)
        items, total = await self.store.search(query)
        return Page(items=items, total=total, page=query.page, limit=query.limit)

    async def status(self, caller: AuthContext, message_id: str) -> Message:
        if not is_message_id(message_id):
            raise ValidationFailed("Invalid messageId format")
        msg = await self.store.get(message_id)
        if msg is None or (not caller.is_admin and msg.tenant_id != caller.tenant_id):
            raise NotFound("Message not found")
        return msg
