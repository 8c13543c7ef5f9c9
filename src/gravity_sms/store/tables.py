"""SQLAlchemy Core tables: one schema for SQLite and PostgreSQL.

Timestamps are stored as aware UTC (`DateTime(timezone=True)`; SQLite keeps ISO text, which sorts
correctly because every value is UTC). The messages table is designed for the listing queries of
api.md §5 at millions of rows: every filter has a (tenant_id, <filter>, created_at, id) index, so
"newest first, ties by id" pages are index range scans on both databases.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
    }
)


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on both databases (SQLite has no time zones: stored as naive UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        result: datetime = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return result


TS = UTCDateTime()

tenants = Table(
    "tenants",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(100), nullable=False),
    Column("status", String(16), nullable=False),
    Column("created_at", TS, nullable=False),
    Column("updated_at", TS, nullable=False),
)

apps = Table(
    "apps",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("tenant_id", String(32), ForeignKey("tenants.id"), nullable=False, index=True),
    Column("name", String(100), nullable=False),
    Column("role", String(8), nullable=False),
    Column("webhook_url", String(2000)),
    Column("api_key_hash", String(64), nullable=False, unique=True),
    Column("api_key_prefix", String(8), nullable=False),
    # Standard Webhooks secrets, AES-256-GCM encrypted (never plaintext at rest).
    Column("webhook_secret_enc", Text, nullable=False),
    Column("previous_secret_enc", Text),
    Column("previous_secret_expires_at", TS),
    Column("last_used_at", TS),
    Column("created_at", TS, nullable=False),
    Column("updated_at", TS, nullable=False),
)

messages = Table(
    "messages",
    metadata,
    Column("id", String(16), primary_key=True),
    Column("tenant_id", String(32), nullable=False),
    Column("app_id", String(32)),
    Column("user_id", String(255)),
    Column("direction", String(8), nullable=False),
    Column("status", String(16), nullable=False),
    Column("from_number", String(16), nullable=False),
    Column("to_number", String(16), nullable=False),
    Column("body", Text, nullable=False),
    Column("rc_message_id", String(32)),
    Column("error", Text),
    Column("rc_created_at", TS),
    Column("created_at", TS, nullable=False),
    Column("updated_at", TS, nullable=False),
    # Outbound queue: attempts so far, not before when, who holds the lease until when.
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", TS),
    Column("lease_owner", String(64)),
    Column("lease_expires_at", TS),
    Column("claimed_at", TS),
    Column("extension_id", String(32)),
    Column("parts_sent", Integer, nullable=False, server_default="0"),
    # Delivery tracking after `sent` (api.md §5 point 8).
    Column("track_next_at", TS),
    Column("track_until", TS),
    # Inbound fan-out outbox: true until every delivery for the message has been attempted.
    Column("fanout_pending", Boolean, nullable=False, server_default=text("false")),
    Index("ix_messages_tenant_created", "tenant_id", "created_at", "id"),
    Index("ix_messages_tenant_direction", "tenant_id", "direction", "created_at", "id"),
    Index("ix_messages_tenant_status", "tenant_id", "status", "created_at", "id"),
    Index("ix_messages_tenant_from", "tenant_id", "from_number", "created_at", "id"),
    Index("ix_messages_tenant_to", "tenant_id", "to_number", "created_at", "id"),
    Index("ix_messages_created", "created_at", "id"),
    # Inbound dedup by (tenant, RingCentral id): race-free through the unique index (api.md §6).
    Index(
        "uq_messages_inbound_rc",
        "tenant_id",
        "rc_message_id",
        unique=True,
        sqlite_where=text("direction = 'inbound'"),
        postgresql_where=text("direction = 'inbound'"),
    ),
    Index(
        "ix_messages_queue",
        "next_attempt_at",
        sqlite_where=text("status IN ('queued', 'sending')"),
        postgresql_where=text("status IN ('queued', 'sending')"),
    ),
    Index(
        "ix_messages_tracking",
        "track_next_at",
        sqlite_where=text("track_next_at IS NOT NULL"),
        postgresql_where=text("track_next_at IS NOT NULL"),
    ),
    Index(
        "ix_messages_fanout",
        "created_at",
        sqlite_where=text("fanout_pending"),
        postgresql_where=text("fanout_pending"),
    ),
)

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("tenant_id", String(32), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("request_hash", String(64), nullable=False),
    Column("message_id", String(16), nullable=False),
    Column("created_at", TS, nullable=False, index=True),
)

delivery_log = Table(
    "delivery_log",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("tenant_id", String(32), nullable=False),
    Column("app_id", String(32)),
    Column("trigger_id", String(32)),
    Column("message_id", String(16), nullable=False),
    Column("url", String(2000), nullable=False),
    Column("status_code", Integer),
    Column("success", Boolean, nullable=False),
    Column("error", Text),
    Column("duration_ms", Integer, nullable=False),
    Column("created_at", TS, nullable=False),
    Index("ix_delivery_log_app_created", "app_id", "created_at", "id"),
    Index("ix_delivery_log_message", "message_id"),
    Index("ix_delivery_log_created", "created_at"),
)

triggers = Table(
    "triggers",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("tenant_id", String(32), ForeignKey("tenants.id"), nullable=False, index=True),
    Column("app_id", String(32)),
    Column("callback_url", String(2000), nullable=False),
    Column("phone_number", String(16)),
    Column("created_at", TS, nullable=False),
)

rc_extensions = Table(
    "rc_extensions",
    metadata,
    Column("tenant_id", String(32), ForeignKey("tenants.id"), primary_key=True),
    Column("extension_id", String(32), primary_key=True),
    Column("account_id", String(32)),
    Column("status", String(16), nullable=False),  # connected | disconnected
    Column("error", Text),
    # RingCentral tokens, AES-256-GCM encrypted.
    Column("access_token_enc", Text),
    Column("refresh_token_enc", Text),
    Column("access_expires_at", TS),
    Column("refresh_expires_at", TS),
    Column("last_event_at", TS),
    Column("created_at", TS, nullable=False),
    Column("updated_at", TS, nullable=False),
)

rc_phone_numbers = Table(
    "rc_phone_numbers",
    metadata,
    Column("tenant_id", String(32), primary_key=True),
    Column("phone_number", String(16), primary_key=True),
    Column("extension_id", String(32), nullable=False),
    Column("features", Text, nullable=False),  # JSON list
    Column("sms_enabled", Boolean, nullable=False),
    Index("ix_rc_phone_numbers_number", "phone_number"),
)

rc_subscriptions = Table(
    "rc_subscriptions",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("tenant_id", String(32), nullable=False, index=True),
    Column("extension_id", String(32), nullable=False),
    # SHA-256 of the verification token; compared in constant time.
    Column("verification_token_hash", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("expires_at", TS),
    Column("created_at", TS, nullable=False),
    Column("updated_at", TS, nullable=False),
)

connect_tokens = Table(
    "connect_tokens",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("tenant_id", String(32), nullable=False, index=True),
    Column("kind", String(8), nullable=False),  # connect | invite
    Column("expires_at", TS, nullable=False),
    Column("used_at", TS),
    Column("created_at", TS, nullable=False),
)

oauth_states = Table(
    "oauth_states",
    metadata,
    Column("state_hash", String(64), primary_key=True),
    Column("tenant_id", String(32), nullable=False),
    Column("code_verifier_enc", Text, nullable=False),
    Column("expires_at", TS, nullable=False),
    Column("created_at", TS, nullable=False),
)
