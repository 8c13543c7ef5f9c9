"""Records of a RingCentral connection and the store port that keeps them.

`ConnectionService` (domain/connections.py) works on these; `SqlConnectionStore` implements
`ConnectionStore`. Standard library only.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from gravity_sms.domain.models import Message
from gravity_sms.domain.provider import RcMessage


@dataclass(frozen=True, slots=True)
class NumberInfo:
    phone_number: str
    extension_id: str
    features: tuple[str, ...]
    sms_enabled: bool

    def public(self) -> dict[str, Any]:
        return {
            "phoneNumber": self.phone_number,
            "extensionId": self.extension_id,
            "features": list(self.features),
            "smsEnabled": self.sms_enabled,
        }


@dataclass(frozen=True, slots=True)
class StoredExtension:
    tenant_id: str
    extension_id: str
    account_id: str
    status: str  # connected | disconnected
    error: str | None
    access_token_enc: str | None
    refresh_token_enc: str | None
    access_expires_at: datetime | None
    refresh_expires_at: datetime | None
    last_event_at: datetime | None
    created_at: datetime
    updated_at: datetime

    @property
    def connected(self) -> bool:
        return self.status == "connected" and self.access_token_enc is not None


@dataclass(frozen=True, slots=True)
class StoredSubscription:
    id: str
    tenant_id: str
    extension_id: str
    verification_token_hash: str
    status: str
    expires_at: datetime | None


class ConnectionStore(Protocol):
    async def get_extension(self, tenant_id: str, extension_id: str) -> StoredExtension | None: ...

    async def tenant_extensions(self, tenant_id: str) -> list[StoredExtension]: ...

    async def all_connected(self) -> list[StoredExtension]: ...

    async def save_connection(self, ext: StoredExtension, numbers: list[NumberInfo]) -> None:
        """Insert or replace the extension row and replace its cached numbers, atomically."""
        ...

    async def save_tokens(
        self,
        tenant_id: str,
        extension_id: str,
        *,
        access_token_enc: str,
        refresh_token_enc: str,
        access_expires_at: datetime,
        refresh_expires_at: datetime,
        now: datetime,
    ) -> None: ...

    async def mark_disconnected(self, tenant_id: str, extension_id: str, error: str, now: datetime) -> None:
        """Status `disconnected` with the error; tokens and subscription rows are dropped."""
        ...

    async def set_error(self, tenant_id: str, extension_id: str, error: str | None, now: datetime) -> None: ...

    async def note_event(self, tenant_id: str, extension_id: str, at: datetime) -> None:
        """last_event_at = max(last_event_at, at)."""
        ...

    async def find_number(self, tenant_id: str, phone_number: str) -> NumberInfo | None: ...

    async def tenant_phone_numbers(self, tenant_id: str) -> list[NumberInfo]: ...

    async def get_subscription(self, subscription_id: str) -> StoredSubscription | None: ...

    async def extension_subscriptions(self, tenant_id: str, extension_id: str) -> list[StoredSubscription]: ...

    async def save_subscription(self, sub: StoredSubscription, now: datetime) -> None: ...

    async def update_subscription(
        self, subscription_id: str, status: str, expires_at: datetime | None, now: datetime
    ) -> None: ...

    async def delete_subscription(self, subscription_id: str) -> None: ...

    async def delete_connection(self, tenant_id: str, extension_id: str) -> None: ...

    async def insert_connect_token(
        self, token_hash: str, tenant_id: str, kind: str, expires_at: datetime, now: datetime
    ) -> None: ...

    async def connect_token_tenant(self, token_hash: str, now: datetime) -> str | None:
        """The tenant of a live, unused token (without consuming it)."""
        ...

    async def consume_connect_token(self, token_hash: str, now: datetime) -> str | None:
        """Mark a live, unused token used (exactly once) and return its tenant."""
        ...

    async def insert_oauth_state(
        self, state_hash: str, tenant_id: str, code_verifier_enc: str, expires_at: datetime, now: datetime
    ) -> None: ...

    async def take_oauth_state(self, state_hash: str, now: datetime) -> tuple[str, str] | None:
        """Delete the state and return (tenant_id, code_verifier_enc) if it was live."""
        ...


class InboundSink(Protocol):
    """The inbound pipeline, as backfill sees it: stores (deduplicated) and fans out."""

    async def accept(self, tenant_id: str, extension_id: str, sms: RcMessage) -> tuple[Message, bool]: ...
