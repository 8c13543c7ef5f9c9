"""Inbound fan-out: the wire payloads (api.md §6.1, §6.4, §8), delivery targets and records.

Owns what is sent and to whom; not how (the HTTP dispatcher lives in `gravity_sms.delivery`)
and not where it is kept (the store implements the protocols below).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from gravity_sms.domain.clock import isoformat_z
from gravity_sms.domain.models import App, Message

TEST_MESSAGE_ID = "msg_000000000000"


def message_timestamp(msg: Message) -> datetime:
    """api.md §6.1: when RingCentral created the message, else when the gateway received it."""
    return msg.rc_created_at or msg.created_at


def inbound_event(msg: Message) -> dict[str, Any]:
    """The §6.1 payload: app webhooks and the WebSocket `sms_inbound` event carry exactly this."""
    return {
        "type": "sms_inbound",
        "messageId": msg.id,
        "from": msg.from_number,
        "to": msg.to_number,
        "body": msg.body,
        "rcMessageId": msg.rc_message_id,
        "tenantId": msg.tenant_id,
        "timestamp": isoformat_z(message_timestamp(msg)),
    }


def trigger_payload(msg: Message) -> dict[str, Any]:
    """api.md §8: what a Power Automate trigger callback receives."""
    return {
        "messageId": msg.id,
        "from": msg.from_number,
        "to": msg.to_number,
        "text": msg.body,
        "receivedAt": isoformat_z(message_timestamp(msg)),
    }


def test_payload(tenant_id: str, now: datetime) -> dict[str, Any]:
    """api.md §6.4."""
    return {
        "type": "test",
        "messageId": TEST_MESSAGE_ID,
        "from": "+15550000000",
        "to": "+15550000001",
        "body": "Test webhook from Gravity SMS",
        "rcMessageId": None,
        "tenantId": tenant_id,
        "timestamp": isoformat_z(now),
    }


@dataclass(frozen=True, slots=True)
class Trigger:
    id: str
    tenant_id: str
    app_id: str | None
    callback_url: str
    phone_number: str | None
    created_at: datetime

    def matches(self, msg: Message) -> bool:
        return self.phone_number is None or self.phone_number == msg.to_number


@dataclass(frozen=True, slots=True)
class Target:
    """One place a message goes: an app's webhook (signed) or a trigger callback (unsigned)."""

    kind: str  # "app" | "trigger"
    url: str
    app_id: str | None
    trigger_id: str | None = None

    @property
    def key(self) -> tuple[str | None, str | None]:
        return (self.app_id if self.trigger_id is None else None, self.trigger_id)


def targets_for(msg: Message, apps: list[App], triggers: list[Trigger]) -> list[Target]:
    out = [Target("app", a.webhook_url, a.id) for a in apps if a.webhook_url]
    out += [Target("trigger", t.callback_url, t.app_id, t.id) for t in triggers if t.matches(msg)]
    return out


@dataclass(frozen=True, slots=True)
class Delivery:
    """One attempt, as written to the delivery log (api.md §4 webhook-deliveries)."""

    id: str
    tenant_id: str
    app_id: str | None
    trigger_id: str | None
    message_id: str
    url: str
    status_code: int | None
    success: bool
    error: str | None
    duration_ms: int
    created_at: datetime
    body: str = ""  # first 2 KB of the reply; returned by test-webhook, never stored

    def public(self) -> dict[str, Any]:
        return {
            "deliveryId": self.id,
            "messageId": self.message_id,
            "url": self.url,
            "statusCode": self.status_code,
            "success": self.success,
            "error": self.error,
            "durationMs": self.duration_ms,
            "createdAt": isoformat_z(self.created_at),
        }


class TriggerStore(Protocol):
    async def insert(self, trigger: Trigger) -> None: ...

    async def get(self, trigger_id: str) -> Trigger | None: ...

    async def delete(self, trigger_id: str) -> bool: ...

    async def for_tenant(self, tenant_id: str) -> list[Trigger]: ...


class DeliveryLog(Protocol):
    async def record(self, delivery: Delivery) -> None: ...

    async def delivered_keys(self, message_id: str) -> set[tuple[str | None, str | None]]:
        """(app_id, trigger_id) of every target that already has an attempt for the message."""
        ...

    async def for_app(self, app_id: str, page: int, limit: int) -> tuple[list[Delivery], int]: ...

    async def delete_older_than(self, cutoff: datetime, batch: int) -> int: ...
