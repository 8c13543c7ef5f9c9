"""`Gateway`: the wired object graph one process runs with.

Built only by the composition root (`gravity_sms.runtime`); the API and the workers receive it and
read their collaborators from it. It owns nothing itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gravity_sms.api.ws_hub import ConnectionHub
from gravity_sms.crypto import AesGcmBox
from gravity_sms.delivery.dispatcher import WebhookDispatcher
from gravity_sms.domain.apps import AppService, UrlPolicy
from gravity_sms.domain.clock import Clock
from gravity_sms.domain.connections import ConnectionService
from gravity_sms.domain.history import MessageHistory
from gravity_sms.domain.inbound import InboundService
from gravity_sms.domain.outbound import OutboundService
from gravity_sms.domain.ports import Broker, KeyCache, LockManager, RateLimiter, TokenStore
from gravity_sms.domain.tenants import TenantService
from gravity_sms.domain.triggers import TriggerService
from gravity_sms.ringcentral import RingCentralClient
from gravity_sms.settings import Settings
from gravity_sms.store import Database, SqlStore
from gravity_sms.store.queue import SqlOutboundQueue
from gravity_sms.telemetry import Metrics


@dataclass
class Gateway:
    settings: Settings
    clock: Clock
    db: Database
    store: SqlStore
    broker: Broker
    limiter: RateLimiter
    key_cache: KeyCache
    tokens: TokenStore
    locks: LockManager
    box: AesGcmBox
    metrics: Metrics
    urls: UrlPolicy
    tenants: TenantService
    apps: AppService
    redis: Any = None  # redis.asyncio.Redis when GRAVITY_REDIS_URL is set
    ws_hub: ConnectionHub | None = None  # this node's WebSocket connections (api.md §7)
    outbound_queue: SqlOutboundQueue | None = None
    outbound: OutboundService | None = None
    inbound: InboundService | None = None
    dispatcher: WebhookDispatcher | None = None
    triggers: TriggerService | None = None
    history: MessageHistory | None = None
    rc: RingCentralClient | None = None
    connections: ConnectionService | None = None
