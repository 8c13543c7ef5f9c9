"""Outbound SMS: validation of a send request, the status rules, body splitting, and the send use case.

Owns what `POST /v1/sms/send` means (api.md §5): the validation order and messages, the
`Idempotency-Key` rules, the `queued` record, and the outbound state machine (a status never moves
backwards; `failed` always carries an error). It stores through the `OutboundQueue` port and never
talks to RingCentral — that is the worker's job (`gravity_sms.delivery.sender`).
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, TypeVar

from gravity_sms.domain.clock import Clock
from gravity_sms.domain.errors import Conflict, ValidationFailed
from gravity_sms.domain.ids import E164_RE, new_message_id
from gravity_sms.domain.models import STATUS_RANK, AuthContext

T = TypeVar("T")

MAX_BODY_CHARS = 1600
MAX_USER_ID = 255
MAX_IDEMPOTENCY_KEY = 255
IDEMPOTENCY_TTL_SECONDS = 24 * 3600
# RingCentral's SMS API takes at most 1000 UTF-16 code units of text (ringcentral.md §4).
RC_TEXT_LIMIT = 1000

REQUIRED = "to, from, and body are required"
NOT_E164 = "to and from must be valid E.164 phone numbers"
BODY_LENGTH = "body must be 1-1600 characters"
BAD_USER_ID = "userId must be a string of at most 255 characters"
BAD_IDEMPOTENCY_KEY = "Idempotency-Key must be 1-255 visible ASCII characters"
IDEMPOTENCY_CONFLICT = "Idempotency-Key was already used with a different request"

NOT_CONNECTED = "RingCentral not connected for this tenant"
TENANT_INACTIVE = "Tenant suspended or inactive"

# api.md §5 point 4: about 2 s, 8 s, 30 s, 2 min, 5 min between 6 attempts.
RETRY_DELAYS: tuple[float, ...] = (2.0, 8.0, 30.0, 120.0, 300.0)
MAX_ATTEMPTS = len(RETRY_DELAYS) + 1

# What may follow what. Outbound: queued → sending → sent | failed; sent → delivered | failed.
_NEXT: dict[str, frozenset[str]] = {
    "queued": frozenset({"sending", "failed"}),
    "sending": frozenset({"sending", "sent", "failed"}),
    "sent": frozenset({"delivered", "failed"}),
    "delivered": frozenset(),
    "failed": frozenset(),
}


def not_registered(phone_number: str) -> str:
    return f"Phone number {phone_number} is not registered in this RingCentral account"


def can_move(current: str, target: str) -> bool:
    """True when `current → target` is allowed: never backwards, never out of a final status."""
    return target in _NEXT.get(current, frozenset()) and STATUS_RANK[target] >= STATUS_RANK[current]


def sources_of(target: str) -> tuple[str, ...]:
    """The statuses a row may be in for a move to `target` (used to guard UPDATEs)."""
    return tuple(s for s, nxt in _NEXT.items() if target in nxt)


@dataclass(frozen=True, slots=True)
class SendRequest:
    to_number: str
    from_number: str
    body: str
    user_id: str | None

    def fingerprint(self) -> str:
        """SHA-256 of the request's meaning: an idempotent repeat must match it exactly."""
        parts = (self.to_number, self.from_number, self.body, self.user_id or "")
        return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()


def validate_send(data: dict[str, Any]) -> SendRequest:
    """api.md §5, in the documented order."""
    to, frm, body = data.get("to"), data.get("from"), data.get("body")
    if not (isinstance(to, str) and to and isinstance(frm, str) and frm and isinstance(body, str) and body):
        raise ValidationFailed(REQUIRED)
    if E164_RE.match(to) is None or E164_RE.match(frm) is None:
        raise ValidationFailed(NOT_E164)
    if len(body) > MAX_BODY_CHARS:
        raise ValidationFailed(BODY_LENGTH)
    user_id = data.get("userId")
    if user_id is not None and not (isinstance(user_id, str) and len(user_id) <= MAX_USER_ID):
        raise ValidationFailed(BAD_USER_ID)
    return SendRequest(to_number=to, from_number=frm, body=body, user_id=user_id)


def validate_idempotency_key(value: str | None) -> str | None:
    """1-255 visible ASCII characters (0x21-0x7E), else 400."""
    if value is None:
        return None
    if not (1 <= len(value) <= MAX_IDEMPOTENCY_KEY) or not all("!" <= c <= "~" for c in value):
        raise ValidationFailed(BAD_IDEMPOTENCY_KEY)
    return value


def utf16_units(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def split_body(text: str, limit: int = RC_TEXT_LIMIT) -> list[str]:
    """Consecutive parts of at most `limit` UTF-16 code units each, joined back they give `text`.

    A part ends after the last whitespace that fits, when there is one; otherwise at the limit,
    but never between the two halves of a surrogate pair (a code point outside the BMP is one
    Python character and two UTF-16 units, so it is never cut).
    """
    if utf16_units(text) <= limit:
        return [text]
    parts: list[str] = []
    start = 0
    n = len(text)
    while start < n:
        units = 0
        end = start
        last_space = -1
        while end < n:
            width = 2 if ord(text[end]) > 0xFFFF else 1
            if units + width > limit:
                break
            units += width
            if text[end].isspace():
                last_space = end
            end += 1
        if end < n and last_space > start:
            end = last_space + 1  # keep the whitespace at the end of this part
        parts.append(text[start:end])
        start = end
    return parts


def retry_delay(attempts: int, retry_after: float | None = None, rng: random.Random | None = None) -> float:
    """Backoff after `attempts` failed attempts: the schedule with ±20 % jitter, never below Retry-After."""
    base = RETRY_DELAYS[min(max(attempts, 1), len(RETRY_DELAYS)) - 1]
    jitter = (rng or random).uniform(0.8, 1.2)
    delay = base * jitter
    if retry_after is not None:
        delay = max(delay, retry_after)
    return delay


@dataclass(frozen=True, slots=True)
class NewOutbound:
    """One message to enqueue, with its idempotency record when a key was given."""

    id: str
    tenant_id: str
    app_id: str | None
    user_id: str | None
    from_number: str
    to_number: str
    body: str
    created_at: datetime
    idempotency_key: str | None = None
    fingerprint: str | None = None


@dataclass(frozen=True, slots=True)
class Enqueued:
    message_id: str
    replayed: bool


class OutboundQueue(Protocol):
    async def enqueue(self, item: NewOutbound) -> Enqueued:
        """Store the message `queued` durably (and its idempotency key in the same transaction).

        A live key with the same fingerprint answers the original id with `replayed=True`;
        with another fingerprint raises `Conflict`.
        """
        ...


@dataclass(frozen=True, slots=True)
class QueuedMessage:
    """A claimed outbound row: what the worker needs to send (or resume) it."""

    id: str
    tenant_id: str
    app_id: str | None
    status: str
    from_number: str
    to_number: str
    body: str
    attempts: int
    parts_sent: int
    rc_message_id: str | None
    extension_id: str | None
    # When the last attempt that may have reached RingCentral started (None: nothing in doubt).
    claimed_at: datetime | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class TrackedMessage:
    id: str
    tenant_id: str
    app_id: str | None
    extension_id: str | None
    rc_message_id: str | None
    track_until: datetime | None


class SendQueue(Protocol):
    """The worker's view of the durable queue (store/queue.py). Moves are guarded: a row in
    another status, or leased to someone else, is left alone and the call answers False."""

    async def claim(
        self,
        owner: str,
        now: datetime,
        lease_seconds: float,
        limit: int,
        per_tenant: int,
        per_number: int,
        skip: Sequence[tuple[str, str]] = (),
    ) -> list[QueuedMessage]: ...

    async def start_attempt(
        self, message_id: str, owner: str, now: datetime, lease_until: datetime, extension_id: str
    ) -> bool: ...

    async def part_accepted(
        self, message_id: str, owner: str, parts_sent: int, rc_message_id: str | None, now: datetime
    ) -> bool: ...

    async def mark_sent(
        self, message_id: str, owner: str, rc_message_id: str | None, now: datetime, track_next_at: datetime
    ) -> bool: ...

    async def mark_failed(self, message_id: str, error: str, now: datetime, owner: str | None = None) -> bool: ...

    async def reschedule(
        self, message_id: str, owner: str, until: datetime, now: datetime, *, in_doubt: bool
    ) -> bool: ...

    async def release(self, owner: str, now: datetime) -> int: ...

    async def rc_id_in_use(self, tenant_id: str, to_number: str, rc_message_id: str) -> bool: ...

    async def claim_tracking(self, now: datetime, lease_seconds: float, limit: int) -> list[TrackedMessage]: ...

    async def mark_delivered(self, message_id: str, now: datetime) -> bool: ...

    async def mark_delivery_failed(self, message_id: str, error: str, now: datetime) -> bool: ...

    async def schedule_tracking(self, message_id: str, next_at: datetime | None) -> None: ...

    async def stats(self, now: datetime) -> tuple[int, float]:
        """(messages queued or sending, age in seconds of the oldest of them)."""
        ...

    async def purge_idempotency_keys(self, before: datetime) -> int: ...


class NumberLike(Protocol):
    @property
    def extension_id(self) -> str: ...

    @property
    def sms_enabled(self) -> bool: ...


class Connections(Protocol):
    """What the outbound pipeline needs of `ConnectionService` (domain/connections.py)."""

    async def call(self, tenant_id: str, extension_id: str, fn: Callable[[str], Awaitable[T]]) -> T: ...

    async def find_number(self, tenant_id: str, phone_number: str) -> NumberLike | None: ...

    async def connected_extensions(self, tenant_id: str) -> list[str]: ...


class OutboundService:
    def __init__(self, queue: OutboundQueue, clock: Clock) -> None:
        self.queue = queue
        self.clock = clock
        # Set by the composition root: nudges this process's worker after a commit.
        self.on_enqueued: Callable[[], None] | None = None

    async def send(self, ctx: AuthContext, data: dict[str, Any], idempotency_key: str | None = None) -> Enqueued:
        request = validate_send(data)
        key = validate_idempotency_key(idempotency_key)
        item = NewOutbound(
            id=new_message_id(),
            tenant_id=ctx.tenant_id,
            app_id=ctx.app_id,
            user_id=request.user_id,
            from_number=request.from_number,
            to_number=request.to_number,
            body=request.body,
            created_at=self.clock.now(),
            idempotency_key=key,
            fingerprint=request.fingerprint() if key is not None else None,
        )
        result = await self.queue.enqueue(item)
        if self.on_enqueued is not None and not result.replayed:
            self.on_enqueued()
        return result


def idempotency_conflict() -> Conflict:
    return Conflict(IDEMPOTENCY_CONFLICT)
