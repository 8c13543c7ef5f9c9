"""The RingCentral port: what the gateway needs from RingCentral, in domain terms.

`gravity_sms.ringcentral.RingCentralClient` implements `RingCentralApi` over HTTP; the domain
(connections, outbound, inbound) depends only on this protocol and these records. Failures are
raised as `ProviderError` (with `retryable`, `retry_after`, `code`), `AuthExpired` (access token
refused: refresh once and repeat) or `ConnectionRevoked` (refresh token refused: disconnected).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True, slots=True)
class RateInfo:
    """RingCentral's `X-Rate-Limit-*` headers of one answer (ringcentral.md §6)."""

    group: str | None = None
    limit: int | None = None
    remaining: int | None = None
    window: int | None = None


@dataclass(frozen=True, slots=True)
class TokenSet:
    access_token: str
    refresh_token: str
    expires_at: datetime
    refresh_expires_at: datetime
    owner_id: str
    scope: str = ""


@dataclass(frozen=True, slots=True)
class RcExtension:
    id: str
    account_id: str
    name: str = ""


@dataclass(frozen=True, slots=True)
class RcPhoneNumber:
    phone_number: str
    features: tuple[str, ...] = ()

    @property
    def sms_enabled(self) -> bool:
        return "SmsSender" in self.features


@dataclass(frozen=True, slots=True)
class RcSubscription:
    id: str
    status: str
    expires_at: datetime | None
    event_filters: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class RcMessage:
    """A message-store record or an SMS-API answer (`id` always a string here)."""

    id: str
    direction: str  # "Inbound" | "Outbound"
    status: str  # messageStatus: Queued, Sent, Delivered, DeliveryFailed, SendingFailed, Received
    from_number: str
    to_numbers: tuple[str, ...]
    text: str
    created_at: datetime | None = None
    error_code: str | None = None  # deliveryErrorCode
    type: str = "SMS"


@dataclass(frozen=True, slots=True)
class SentSms:
    message: RcMessage
    rate: RateInfo | None = None


@dataclass(frozen=True, slots=True)
class ProviderCall:
    """What every call reports for metrics and pacing."""

    operation: str
    status: int | None
    rate: RateInfo | None = field(default=None)


class RingCentralApi(Protocol):
    def authorize_url(self, *, redirect_uri: str, state: str, code_challenge: str) -> str: ...

    async def exchange_code(self, *, code: str, redirect_uri: str, code_verifier: str) -> TokenSet: ...

    async def refresh(self, refresh_token: str) -> TokenSet: ...

    async def revoke(self, token: str) -> None: ...

    async def get_extension(self, access_token: str) -> RcExtension: ...

    async def list_phone_numbers(self, access_token: str) -> list[RcPhoneNumber]: ...

    async def create_subscription(
        self, access_token: str, *, address: str, verification_token: str, event_filters: list[str], expires_in: int
    ) -> RcSubscription: ...

    async def get_subscription(self, access_token: str, subscription_id: str) -> RcSubscription: ...

    async def renew_subscription(self, access_token: str, subscription_id: str) -> RcSubscription: ...

    async def delete_subscription(self, access_token: str, subscription_id: str) -> None: ...

    async def send_sms(self, access_token: str, *, from_number: str, to_number: str, text: str) -> SentSms: ...

    async def get_message(self, access_token: str, message_id: str) -> RcMessage: ...

    async def list_messages(
        self,
        access_token: str,
        *,
        direction: str | None = None,
        date_from: datetime | None = None,
        date_to: datetime | None = None,
        per_page: int = 100,
        page: int = 1,
    ) -> list[RcMessage]: ...
