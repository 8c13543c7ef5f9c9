"""Frozen domain records. The store returns these; the API renders them with `public()` helpers."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from gravity_sms.domain.clock import isoformat_z

TenantStatus = Literal["active", "suspended", "inactive"]
TENANT_STATUSES: tuple[str, ...] = ("active", "suspended", "inactive")
Role = Literal["app", "admin"]
Direction = Literal["inbound", "outbound"]
OUTBOUND_STATUSES: tuple[str, ...] = ("queued", "sending", "sent", "delivered", "failed")
INBOUND_STATUSES: tuple[str, ...] = ("received",)
MESSAGE_STATUSES: tuple[str, ...] = (*OUTBOUND_STATUSES, *INBOUND_STATUSES)
# A status never moves backwards (api.md §5): the rank of each outbound status.
STATUS_RANK: dict[str, int] = {
    "queued": 0,
    "sending": 1,
    "sent": 2,
    "delivered": 3,
    "failed": 3,
    "received": 0,
}


def _ts(value: datetime | None) -> str | None:
    return isoformat_z(value) if value is not None else None


@dataclass(frozen=True, slots=True)
class Tenant:
    id: str
    name: str
    status: str
    created_at: datetime
    updated_at: datetime

    def public(self) -> dict[str, Any]:
        return {
            "tenantId": self.id,
            "name": self.name,
            "status": self.status,
            "createdAt": _ts(self.created_at),
            "updatedAt": _ts(self.updated_at),
        }


@dataclass(frozen=True, slots=True)
class App:
    id: str
    tenant_id: str
    name: str
    role: str
    webhook_url: str | None
    api_key_prefix: str
    last_used_at: datetime | None
    created_at: datetime
    updated_at: datetime

    def public(self) -> dict[str, Any]:
        return {
            "appId": self.id,
            "tenantId": self.tenant_id,
            "name": self.name,
            "role": self.role,
            "webhookUrl": self.webhook_url,
            "apiKeyPrefix": self.api_key_prefix,
            "lastUsedAt": _ts(self.last_used_at),
            "createdAt": _ts(self.created_at),
            "updatedAt": _ts(self.updated_at),
        }


@dataclass(frozen=True, slots=True)
class AppSecrets:
    """What a delivery needs to sign: the current secret and, during rotation, the previous one."""

    app_id: str
    webhook_secret: str
    previous_secret: str | None
    previous_expires_at: datetime | None


@dataclass(frozen=True, slots=True)
class AuthContext:
    """Who is calling: resolved from an API key (or a WebSocket token)."""

    app_id: str
    tenant_id: str
    role: str
    key_hash: str
    tenant_status: str = "active"

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


@dataclass(frozen=True, slots=True)
class Message:
    id: str
    tenant_id: str
    direction: str
    status: str
    from_number: str
    to_number: str
    body: str
    created_at: datetime
    updated_at: datetime
    app_id: str | None = None
    user_id: str | None = None
    rc_message_id: str | None = None
    error: str | None = None
    rc_created_at: datetime | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def public(self) -> dict[str, Any]:
        return {
            "messageId": self.id,
            "direction": self.direction,
            "status": self.status,
            "from": self.from_number,
            "to": self.to_number,
            "body": self.body,
            "rcMessageId": self.rc_message_id,
            "error": self.error,
            "tenantId": self.tenant_id,
            "appId": self.app_id,
            "userId": self.user_id,
            "createdAt": _ts(self.created_at),
            "updatedAt": _ts(self.updated_at),
        }


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a listing, newest first."""

    items: list[Any]
    total: int
    page: int
    limit: int
