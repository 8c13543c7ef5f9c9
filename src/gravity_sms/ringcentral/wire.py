"""Typed wire models of RingCentral's JSON (ringcentral.md §1-§5), and their domain records.

Tolerant by design: unknown extra fields are ignored, optional fields may be missing, and ids
may arrive as strings (events) or numbers (REST answers) — they are always strings here.
Field names follow RingCentral's camelCase through aliases.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from gravity_sms.domain.clock import parse_iso
from gravity_sms.domain.provider import RcExtension, RcMessage, RcPhoneNumber, RcSubscription, TokenSet


def _id(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return str(value)
    return value


def _time(value: Any) -> Any:
    if isinstance(value, str) and value:
        return parse_iso(value)
    return value


Id = Annotated[str, BeforeValidator(_id)]
Time = Annotated[datetime, BeforeValidator(_time)]


class Wire(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True, frozen=True)


class TokenAnswer(Wire):
    access_token: str
    token_type: str = "bearer"
    expires_in: int = 3600
    refresh_token: str
    refresh_token_expires_in: int = 604800
    scope: str = ""
    owner_id: Id = ""
    endpoint_id: str | None = None
    session_id: Id | None = None

    def to_domain(self, now: datetime) -> TokenSet:
        return TokenSet(
            access_token=self.access_token,
            refresh_token=self.refresh_token,
            expires_at=now + timedelta(seconds=self.expires_in),
            refresh_expires_at=now + timedelta(seconds=self.refresh_token_expires_in),
            owner_id=self.owner_id,
            scope=self.scope,
        )


class AccountRef(Wire):
    id: Id


class ExtensionInfo(Wire):
    id: Id
    extension_number: str | None = Field(default=None, alias="extensionNumber")
    name: str = ""
    type: str | None = None
    status: str | None = None
    account: AccountRef | None = None

    def to_domain(self) -> RcExtension:
        return RcExtension(id=self.id, account_id=self.account.id if self.account else "", name=self.name)


class PhoneNumberRecord(Wire):
    id: Id | None = None
    phone_number: str = Field(alias="phoneNumber")
    usage_type: str | None = Field(default=None, alias="usageType")
    type: str | None = None
    status: str | None = None
    features: list[str] = Field(default_factory=list)

    def to_domain(self) -> RcPhoneNumber:
        return RcPhoneNumber(phone_number=self.phone_number, features=tuple(self.features))


class Paging(Wire):
    page: int | None = None
    total_pages: int | None = Field(default=None, alias="totalPages")
    per_page: int | None = Field(default=None, alias="perPage")


class PhoneNumberList(Wire):
    records: list[PhoneNumberRecord] = Field(default_factory=list)
    paging: Paging | None = None


class BlacklistedData(Wire):
    reason: str | None = None
    blacklisted_at: Time | None = Field(default=None, alias="blacklistedAt")


class DeliveryMode(Wire):
    transport_type: str | None = Field(default=None, alias="transportType")
    address: str | None = None
    encryption: bool | None = None


class SubscriptionInfo(Wire):
    id: Id
    status: str = "Active"
    event_filters: list[str] = Field(default_factory=list, alias="eventFilters")
    expiration_time: Time | None = Field(default=None, alias="expirationTime")
    expires_in: int | None = Field(default=None, alias="expiresIn")
    creation_time: Time | None = Field(default=None, alias="creationTime")
    delivery_mode: DeliveryMode | None = Field(default=None, alias="deliveryMode")
    blacklisted_data: BlacklistedData | None = Field(default=None, alias="blacklistedData")

    def to_domain(self) -> RcSubscription:
        return RcSubscription(
            id=self.id, status=self.status, expires_at=self.expiration_time, event_filters=tuple(self.event_filters)
        )


class SubscriptionList(Wire):
    records: list[SubscriptionInfo] = Field(default_factory=list)


class Party(Wire):
    phone_number: str | None = Field(default=None, alias="phoneNumber")
    name: str | None = None
    location: str | None = None


class MessageRecord(Wire):
    """A message-store record, an SMS-API answer, or an instant-SMS event body (§3, §4)."""

    id: Id
    type: str = "SMS"
    direction: str = ""
    message_status: str = Field(default="", alias="messageStatus")
    from_: Party | None = Field(default=None, alias="from")
    to: list[Party] = Field(default_factory=list)
    subject: str | None = None
    creation_time: Time | None = Field(default=None, alias="creationTime")
    last_modified_time: Time | None = Field(default=None, alias="lastModifiedTime")
    delivery_error_code: str | None = Field(default=None, alias="deliveryErrorCode")
    segment_count: int | None = Field(default=None, alias="segmentCount")

    def to_domain(self) -> RcMessage:
        return RcMessage(
            id=self.id,
            direction=self.direction,
            status=self.message_status,
            from_number=(self.from_.phone_number or "") if self.from_ else "",
            to_numbers=tuple(p.phone_number for p in self.to if p.phone_number),
            text=self.subject or "",
            created_at=self.creation_time,
            error_code=self.delivery_error_code,
            type=self.type,
        )


class MessageList(Wire):
    records: list[MessageRecord] = Field(default_factory=list)
    paging: Paging | None = None


class ErrorDetail(Wire):
    error_code: str | None = Field(default=None, alias="errorCode")
    message: str | None = None
    parameter_name: str | None = Field(default=None, alias="parameterName")


class ErrorBody(Wire):
    """Both error forms (ringcentral.md §1, §7)."""

    error_code: str | None = Field(default=None, alias="errorCode")
    message: str | None = None
    error: str | None = None
    error_description: str | None = None
    errors: list[ErrorDetail] = Field(default_factory=list)


class EventEnvelope(Wire):
    """Every webhook notification (ringcentral.md §3); `body` is read by the event's kind."""

    uuid: Id
    event: str
    timestamp: Time | None = None
    subscription_id: Id = Field(alias="subscriptionId")
    owner_id: Id | None = Field(default=None, alias="ownerId")
    body: dict[str, Any] = Field(default_factory=dict)

    @property
    def is_instant_sms(self) -> bool:
        return "/message-store/instant" in self.event

    @property
    def is_expiry_reminder(self) -> bool:
        return self.event.startswith("/restapi/v1.0/subscription/")


class ExpiryReminderBody(Wire):
    expires_in: int = Field(alias="expiresIn")


class StoreChange(Wire):
    type: str | None = None
    new_count: int = Field(default=0, alias="newCount")
    updated_count: int = Field(default=0, alias="updatedCount")
    new_message_ids: list[Id] = Field(default_factory=list, alias="newMessageIds")


class MessageStoreChangeBody(Wire):
    account_id: Id | None = Field(default=None, alias="accountId")
    extension_id: Id | None = Field(default=None, alias="extensionId")
    last_updated: Time | None = Field(default=None, alias="lastUpdated")
    changes: list[StoreChange] = Field(default_factory=list)
