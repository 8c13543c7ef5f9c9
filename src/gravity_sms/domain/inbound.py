"""Inbound SMS: reading RingCentral notifications, durable dedup'd storage, and the hand-off.

Owns the rules of api.md §6 steps 2-4: which notifications exist (ringcentral.md §3), how an
instant-SMS body becomes a `Message`, and that a message is stored once per (tenant,
rcMessageId) before anything is announced. It does not deliver webhooks (the dispatcher does,
from the `fanout_pending` outbox) and does not talk HTTP.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from gravity_sms.domain.clock import Clock, parse_iso
from gravity_sms.domain.fanout import inbound_event
from gravity_sms.domain.ids import new_message_id
from gravity_sms.domain.models import Message
from gravity_sms.domain.ports import Broker
from gravity_sms.domain.provider import RcMessage

EVENTS_CHANNEL = "gravity.events"
# Column widths of the messages table: a value that does not fit is a malformed event (400),
# never a database error (500).
MAX_NUMBER = 16
MAX_RC_ID = 32


class InvalidEvent(Exception):
    """The notification is not one we can read: answered `400 {"error": "Invalid event"}`."""


@dataclass(frozen=True, slots=True)
class Notification:
    """The envelope of a RingCentral webhook notification (ringcentral.md §3)."""

    subscription_id: str
    kind: str  # "instant_sms" | "expiry_reminder" | "other"
    body: Any = None  # read with `parse_sms` once the sender is verified


@dataclass(frozen=True, slots=True)
class InboundRoute:
    """Where a subscription's events go, and whether they may be stored now."""

    subscription_id: str
    tenant_id: str
    extension_id: str
    verification_token_hash: str
    subscription_status: str
    tenant_status: str | None
    extension_status: str | None

    def token_matches(self, presented_hash: str) -> bool:
        return hmac.compare_digest(presented_hash.encode(), self.verification_token_hash.encode())

    @property
    def accepting(self) -> bool:
        """Events of a disconnected or suspended tenant store nothing (quality.md §3)."""
        return (
            self.subscription_status.lower() == "active"
            and self.tenant_status == "active"
            and self.extension_status == "connected"
        )


class InboundStore(Protocol):
    async def inbound_route(self, subscription_id: str) -> InboundRoute | None:
        """One indexed read: the subscription, its tenant's status and its extension's status."""
        ...

    async def insert_inbound(self, msg: Message, *, lease_owner: str | None, lease_seconds: float) -> Message | None:
        """Insert with `fanout_pending`; None when (tenant, rcMessageId) is already stored."""
        ...

    async def find_inbound(self, tenant_id: str, rc_message_id: str) -> Message | None: ...


class NumberDirectory(Protocol):
    async def tenant_numbers(self, tenant_id: str) -> set[str]: ...


class FanoutSink(Protocol):
    """The dispatcher as seen from here: takes a stored message, never blocks."""

    @property
    def lease(self) -> tuple[str | None, float]:
        """(owner, seconds) to stamp on new rows; owner None when no dispatcher runs here."""
        ...

    def submit(self, msg: Message) -> None: ...


def _text(value: Any, limit: int, *, numeric: bool = False) -> str:
    if numeric and isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value or len(value) > limit:
        raise InvalidEvent("bad field")
    return value


def _number(party: Any) -> str:
    if not isinstance(party, dict):
        raise InvalidEvent("bad party")
    return _text(party.get("phoneNumber"), MAX_NUMBER)


def _clean_body(value: Any) -> str:
    if value is None:
        return ""  # an MMS may carry no text
    if not isinstance(value, str):
        raise InvalidEvent("bad subject")
    # PostgreSQL text cannot hold NUL; nothing legitimate sends one.
    return value.replace("\x00", "\ufffd")


def parse_sms(body: Any) -> RcMessage | None:
    """An instant-SMS event body → RcMessage; None for outbound/other directions.

    Tolerates missing optional fields and unknown extra fields (ringcentral.md §3). Recipients
    marked `target: true` are listed first.
    """
    if not isinstance(body, dict):
        raise InvalidEvent("body")
    direction = body.get("direction", "Inbound")
    if direction != "Inbound":
        return None
    recipients = body.get("to")
    if not isinstance(recipients, list) or not recipients:
        raise InvalidEvent("to")
    ordered = sorted(recipients, key=lambda r: not (isinstance(r, dict) and r.get("target") is True))
    created: datetime | None = None
    if isinstance(body.get("creationTime"), str):
        try:
            created = parse_iso(body["creationTime"])
        except ValueError:
            created = None
    return RcMessage(
        id=_text(body.get("id"), MAX_RC_ID, numeric=True),  # a number in REST answers
        direction="Inbound",
        status=str(body.get("messageStatus") or "Received"),
        from_number=_number(body.get("from")),
        to_numbers=tuple(_number(r) for r in ordered),
        text=_clean_body(body.get("subject")),
        created_at=created,
        type=str(body.get("type") or "SMS"),
    )


def parse_notification(data: Any) -> Notification:
    if not isinstance(data, dict):
        raise InvalidEvent("envelope")
    sub_id = data.get("subscriptionId")
    if not isinstance(sub_id, str) or not sub_id or len(sub_id) > 64:
        raise InvalidEvent("subscriptionId")
    event = data.get("event")
    if not isinstance(event, str):
        event = ""
    path = event.split("?", 1)[0]
    if path.endswith("/message-store/instant"):
        return Notification(sub_id, "instant_sms", data.get("body"))
    if "/subscription" in path and "/message-store" not in path:
        return Notification(sub_id, "expiry_reminder")
    return Notification(sub_id, "other")


class InboundService:
    def __init__(
        self,
        store: InboundStore,
        numbers: NumberDirectory,
        broker: Broker,
        clock: Clock,
        fanout: FanoutSink | None = None,
        connections: Callable[[], Any] | None = None,
    ) -> None:
        self.store = store
        self.numbers = numbers
        self.broker = broker
        self.clock = clock
        self.fanout = fanout
        self._connections = connections or (lambda: None)

    async def _recipient(self, tenant_id: str, to_numbers: tuple[str, ...]) -> str:
        """The `to` that belongs to the tenant; else the `target: true` entry; else the first."""
        if len(to_numbers) == 1:
            return to_numbers[0]
        owned = await self.numbers.tenant_numbers(tenant_id)
        return next((n for n in to_numbers if n in owned), to_numbers[0])

    async def save(self, tenant_id: str, extension_id: str, sms: RcMessage) -> tuple[Message, bool]:
        """Durably store once per (tenant, rcMessageId). Nothing is announced here."""
        now = self.clock.now()
        owner, lease_seconds = self.fanout.lease if self.fanout is not None else (None, 0.0)
        msg = Message(
            id=new_message_id(),
            tenant_id=tenant_id,
            direction="inbound",
            status="received",
            from_number=sms.from_number,
            to_number=await self._recipient(tenant_id, sms.to_numbers),
            body=sms.text,
            created_at=now,
            updated_at=now,
            rc_message_id=sms.id,
            rc_created_at=sms.created_at,
            extra={"extension_id": extension_id},
        )
        stored = await self.store.insert_inbound(msg, lease_owner=owner, lease_seconds=lease_seconds)
        if stored is not None:
            return stored, True
        existing = await self.store.find_inbound(tenant_id, sms.id)
        if existing is None:  # deleted by retention between the two statements
            return msg, False
        return existing, False

    async def announce(self, msg: Message, extension_id: str | None = None) -> None:
        """After the message is durable: the WebSocket event, the fan-out, the liveness note."""
        if self.fanout is not None:
            self.fanout.submit(msg)
        await self.broker.publish(EVENTS_CHANNEL, inbound_event(msg))
        connections = self._connections()
        note = getattr(connections, "note_event", None)
        if note is not None and extension_id is not None:
            await note(msg.tenant_id, extension_id, msg.created_at)

    async def accept(self, tenant_id: str, extension_id: str, sms: RcMessage) -> tuple[Message, bool]:
        """Store and, when new, announce (the backfill path; the webhook splits the two)."""
        msg, created = await self.save(tenant_id, extension_id, sms)
        if created:
            await self.announce(msg, extension_id)
        return msg, created
