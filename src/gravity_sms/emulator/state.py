"""Everything the emulator remembers: directory, OAuth sessions, subscriptions, messages, logs.

Owns the records and their lookups. It performs no I/O and renders no JSON; the modules
named after each RingCentral concept do that.
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, cast

from starlette.requests import Request

from gravity_sms.emulator.clock import EmulatorClock
from gravity_sms.emulator.config import EmulatorConfig
from gravity_sms.emulator.faults import FaultBook
from gravity_sms.emulator.ratelimit import RateLimiter


@dataclass
class PhoneNumber:
    id: int
    phone_number: str
    features: list[str]
    usage_type: str = "DirectNumber"
    type: str = "VoiceFax"
    payment_type: str = "Local"
    status: str = "Normal"
    location: str | None = None


@dataclass
class Extension:
    id: str
    account_id: str
    extension_number: str
    name: str
    type: str = "User"
    status: str = "Enabled"
    first_name: str = ""
    last_name: str = ""
    email: str = ""
    phone_numbers: list[PhoneNumber] = field(default_factory=list)


@dataclass
class Account:
    id: str
    extension_ids: list[str] = field(default_factory=list)


@dataclass
class Client:
    client_id: str
    client_secret: str
    redirect_uris: list[str]
    scope: str = "ReadAccounts ReadMessages SMS SubscriptionWebhook"

    def accepts_redirect(self, uri: str) -> bool:
        # ringcentral.md §1: the redirect URI must match a registered one exactly;
        # "*" is the emulator's wildcard for tests on random ports.
        return "*" in self.redirect_uris or uri in self.redirect_uris


@dataclass
class AuthCode:
    code: str
    client_id: str
    redirect_uri: str
    extension_id: str
    challenge: str | None
    challenge_method: str
    expires_at: float


@dataclass
class Session:
    """One OAuth session: the current access/refresh pair of a user in an app."""

    session_id: str
    client_id: str
    extension_id: str
    account_id: str
    scope: str
    endpoint_id: str
    created_at: float
    access_token: str = ""
    access_expires_at: float = 0.0
    refresh_token: str | None = None
    refresh_expires_at: float = 0.0
    ended: bool = False


@dataclass
class RefreshGrace:
    """An already-used refresh token that still answers with its successor pair."""

    response: dict[str, Any]
    until: float


@dataclass
class Subscription:
    id: str
    extension_id: str
    account_id: str
    client_id: str
    event_filters: list[str]
    requested_filters: list[str]
    address: str
    verification_token: str | None
    expires_in: int
    creation_time: float
    expiration_time: float
    status: str = "Active"
    blacklisted_reason: str | None = None
    blacklisted_at: float | None = None
    consecutive_failures: int = 0
    last_reminder_at: float | None = None

    def expired(self, now: float) -> bool:
        return now >= self.expiration_time


@dataclass
class Message:
    id: int
    extension_id: str
    account_id: str
    direction: str
    from_number: str
    to_numbers: list[str]
    text: str
    creation_time: float
    last_modified_time: float
    status: str
    conversation_id: int
    read_status: str
    client_id: str | None = None
    # Inbound only: what the control API said about the sender (RingCentral's caller-id lookup).
    from_location: str | None = None
    error_code: str | None = None
    delivery_time: float | None = None
    # (final status, error code) chosen at send time by a delivery-failure fault.
    planned_failure: tuple[str, str] | None = None


@dataclass
class DeliveryRecord:
    kind: str
    subscription_id: str
    address: str
    at: float
    status: int | None
    error: str | None


class EmulatorState:
    """The whole in-memory world of one emulator instance."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.clock = EmulatorClock()
        self.faults = FaultBook(config.fault_seed)
        self.limiter = RateLimiter(config, self.clock)
        self.pending_lock = asyncio.Lock()
        self.clear()

    def clear(self) -> None:
        """Forget everything (directory included); the clock and faults start over."""
        self.clock.reset()
        self.faults.clear()
        self.limiter.clear()
        self.accounts: dict[str, Account] = {}
        self.extensions: dict[str, Extension] = {}
        self.clients: dict[str, Client] = {}
        self.codes: dict[str, AuthCode] = {}
        self.sessions: dict[str, Session] = {}
        self.access_index: dict[str, str] = {}
        self.refresh_index: dict[str, str] = {}
        self.refresh_grace: dict[str, RefreshGrace] = {}
        self.subscriptions: dict[str, Subscription] = {}
        self.messages: dict[int, Message] = {}
        self.sent_sms_ids: list[int] = []
        self.pending_outbound: set[int] = set()
        self.requests: deque[dict[str, Any]] = deque(maxlen=self.config.log_limit)
        self.deliveries: deque[DeliveryRecord] = deque(maxlen=self.config.log_limit)
        self.next_login: str | None = None
        self.deny_next = False
        self._session_ids = itertools.count(7745120398)
        self._message_ids = itertools.count(2718281830001)
        self._number_ids = itertools.count(61234501)
        self._request_seq = itertools.count(1)

    # ids ---------------------------------------------------------------------------
    def new_session_id(self) -> str:
        return str(next(self._session_ids))

    def new_message_id(self) -> int:
        return next(self._message_ids)

    def new_number_id(self) -> int:
        return next(self._number_ids)

    def new_request_seq(self) -> int:
        return next(self._request_seq)

    @staticmethod
    def new_token() -> str:
        return secrets.token_urlsafe(36)

    def new_event_uuid(self) -> str:
        # ringcentral.md §3: a long decimal string.
        return str(secrets.randbelow(9 * 10**18) + 10**18)

    # directory ---------------------------------------------------------------------
    def all_extensions(self) -> Iterator[Extension]:
        for account in self.accounts.values():
            for ext_id in account.extension_ids:
                yield self.extensions[ext_id]

    def first_extension(self) -> Extension | None:
        return next(self.all_extensions(), None)

    def find_extension_by_hint(self, hint: str) -> Extension | None:
        """`login_hint`: an extension id, an extension number or one of its phone numbers."""
        for ext in self.all_extensions():
            if hint in (ext.id, ext.extension_number):
                return ext
            if any(n.phone_number == hint for n in ext.phone_numbers):
                return ext
        return None

    def owner_of_number(self, phone_number: str) -> Extension | None:
        for ext in self.all_extensions():
            if any(n.phone_number == phone_number for n in ext.phone_numbers):
                return ext
        return None

    # sessions ----------------------------------------------------------------------
    def live_sessions(self, client_id: str, extension_id: str) -> list[Session]:
        return [
            s
            for s in self.sessions.values()
            if not s.ended and s.client_id == client_id and s.extension_id == extension_id
        ]

    def end_session(self, session: Session) -> None:
        session.ended = True
        self.access_index.pop(session.access_token, None)
        if session.refresh_token is not None:
            self.refresh_index.pop(session.refresh_token, None)
        for token, grace in list(self.refresh_grace.items()):
            if grace.response.get("session_id") == session.session_id:
                del self.refresh_grace[token]

    # subscriptions -----------------------------------------------------------------
    def live_subscriptions(self, client_id: str, extension_id: str) -> list[Subscription]:
        now = self.clock.now()
        return [
            s
            for s in self.subscriptions.values()
            if s.client_id == client_id and s.extension_id == extension_id and not s.expired(now)
        ]

    def blacklist(self, sub: Subscription, reason: str) -> None:
        sub.status = "Blacklisted"
        sub.blacklisted_reason = reason
        sub.blacklisted_at = self.clock.now()


def state_of(request: Request) -> EmulatorState:
    return cast(EmulatorState, request.app.state.emulator)
