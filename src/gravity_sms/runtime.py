"""Composition root: builds the gateway's object graph from settings and runs it.

`build_gateway()` wires adapters (store, broker, crypto) and services; `Runtime` owns the
background workers (a supervisor task group) and the HTTP app, with an explicit lifecycle:
start → serve → drain with a deadline → close.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
from collections.abc import AsyncIterator
from typing import Any, Protocol

import uvicorn
from starlette.applications import Starlette

from gravity_sms.api.app import create_app
from gravity_sms.api.ws import FanoutProtocol
from gravity_sms.api.ws_hub import ConnectionHub
from gravity_sms.broker.memory import (
    MemoryBroker,
    MemoryKeyCache,
    MemoryLockManager,
    MemoryRateLimiter,
    MemoryTokenStore,
)
from gravity_sms.container import Gateway
from gravity_sms.crypto import AesGcmBox
from gravity_sms.delivery.sender import OutboundWorker
from gravity_sms.domain.apps import AppService, UrlPolicy
from gravity_sms.domain.clock import Clock, SystemClock
from gravity_sms.domain.connections import ConnectionService
from gravity_sms.domain.outbound import OutboundService
from gravity_sms.domain.provider import RingCentralApi
from gravity_sms.domain.tenants import TenantService
from gravity_sms.domain.urls import Resolver, system_resolver
from gravity_sms.ringcentral import RingCentralClient
from gravity_sms.settings import Settings
from gravity_sms.store import Database, SqlStore
from gravity_sms.store.migrate import migrate
from gravity_sms.store.queue import SqlOutboundQueue
from gravity_sms.telemetry import Metrics, configure_logging, get_logger

log = get_logger("gravity.runtime")
DRAIN_SECONDS = 10.0


class Worker(Protocol):
    name: str

    async def run(self) -> None: ...

    async def run_until_idle(self) -> None: ...


async def build_gateway(
    settings: Settings,
    *,
    clock: Clock | None = None,
    db: Database | None = None,
    resolver: Resolver | None = None,
    rc_http: Any = None,
) -> Gateway:
    clock = clock or SystemClock()
    db = db or Database(settings.effective_database_url)
    store = SqlStore(db)
    box = AesGcmBox(settings.encryption_key_bytes())
    metrics = Metrics()
    urls = UrlPolicy(
        https_only=settings.is_production,
        block_private=settings.block_private,
        resolver=resolver or system_resolver,  # tests inject a fake: never real DNS
    )
    broker: Any = MemoryBroker()
    limiter: Any = MemoryRateLimiter(clock)
    key_cache: Any = MemoryKeyCache()
    tokens: Any = MemoryTokenStore(clock)
    locks: Any = MemoryLockManager()
    redis = None
    if settings.redis_url:
        # Cluster mode (operations.md §4): shared state in Redis; PostgreSQL stays the truth.
        # Rate-limit windows use the Redis server's clock unless a test injected its own.
        from gravity_sms.broker import redis as rb

        redis = rb.connect_redis(settings.redis_url)
        ports_clock = None if isinstance(clock, SystemClock) else clock
        broker = rb.RedisBroker(redis)
        limiter = rb.RedisRateLimiter(redis, clock=ports_clock)
        key_cache = rb.RedisKeyCache(redis)
        tokens = rb.RedisTokenStore(redis)
        locks = rb.RedisLockManager(redis)
    tenants = TenantService(store.tenants, clock, key_cache)
    apps = AppService(store.apps, store.tenants, key_cache, box, clock, urls)
    rc = RingCentralClient(
        settings.rc_server_url,
        settings.rc_client_id or "",
        settings.rc_client_secret or "",
        http=rc_http,  # tests pass an httpx client bound to the emulator
        on_call=lambda call: metrics.rc_calls.labels(call.operation, str(call.status or "error")).inc(),
        clock=clock,
    )
    connections = ConnectionService(
        store.connections, rc, locks, box, clock, limiter, public_url=settings.effective_public_url
    )
    outbound_queue = SqlOutboundQueue(db)
    outbound = OutboundService(outbound_queue, clock)
    gw = Gateway(
        settings=settings,
        clock=clock,
        db=db,
        store=store,
        broker=broker,
        limiter=limiter,
        key_cache=key_cache,
        tokens=tokens,
        locks=locks,
        box=box,
        metrics=metrics,
        urls=urls,
        tenants=tenants,
        apps=apps,
        redis=redis,
        rc=rc,
        connections=connections,
        outbound_queue=outbound_queue,
        outbound=outbound,
    )
    _wire_inbound(gw)
    gw.ws_hub = ConnectionHub(broker, store.tenants, metrics)
    return gw


def _wire_inbound(gw: Gateway) -> None:
    """Inbound SMS: storage, the fan-out dispatcher, triggers and the message history."""
    from gravity_sms import __version__
    from gravity_sms.delivery.dispatcher import WebhookDispatcher
    from gravity_sms.delivery.webhook_client import WebhookClient
    from gravity_sms.domain.history import MessageHistory
    from gravity_sms.domain.inbound import InboundService
    from gravity_sms.domain.triggers import TriggerService

    client = WebhookClient(
        timeout=gw.settings.webhook_timeout_seconds,
        block_private=gw.settings.block_private,
        user_agent=f"GravitySMS-Webhook/{__version__}",
        resolver=gw.urls.resolver,
    )
    gw.dispatcher = WebhookDispatcher(
        outbox=gw.store.messages,
        log_store=gw.store.deliveries,
        apps=gw.store.apps,
        triggers=gw.store.triggers,
        signing_secrets=gw.apps.signing_secrets,
        client=client,
        clock=gw.clock,
        metrics=gw.metrics,
    )
    gw.inbound = InboundService(
        gw.store.messages,
        gw.store.connections,
        gw.broker,
        gw.clock,
        fanout=gw.dispatcher,
        connections=lambda: gw.connections,
    )
    # The dispatcher caches each tenant's targets: app and trigger changes made here drop the
    # entry at once, and the store asks it whether a new row needs a fan-out at all.
    gw.apps.on_targets_changed = gw.dispatcher.invalidate
    gw.store.messages.fanout_needed = gw.dispatcher.needs_fanout
    gw.triggers = TriggerService(gw.store.triggers, gw.clock, gw.urls, gw.dispatcher.invalidate)
    gw.history = MessageHistory(gw.store.messages)


def _connection_workers(gw: Gateway) -> list[Worker]:
    """The RingCentral connection scheduler; backfill goes to the inbound pipeline when wired."""
    if gw.connections is None:
        return []
    from gravity_sms.delivery.scheduler import ConnectionScheduler

    sink = gw.inbound
    return [ConnectionScheduler(gw.connections, gw.locks, gw.clock, sink=sink)]


def make_outbound_worker(
    gw: Gateway, connections: ConnectionService, rc: RingCentralApi, **overrides: Any
) -> OutboundWorker:
    """The outbound sender over this gateway's queue, broker, limiter and clock."""
    assert gw.outbound_queue is not None
    return OutboundWorker(
        queue=gw.outbound_queue,
        tenants=gw.store.tenants,
        connections=connections,
        rc=rc,
        broker=gw.broker,
        limiter=gw.limiter,
        clock=gw.clock,
        metrics=gw.metrics,
        send_rate_per_number=gw.settings.send_rate_per_number,
        **overrides,
    )


def _outbound_workers(gw: Gateway) -> list[Worker]:
    """The outbound sender and delivery tracker, once the RingCentral connection is wired."""
    connections = gw.connections
    rc = gw.rc
    if connections is None or rc is None or gw.outbound_queue is None:
        return []
    from gravity_sms.delivery.tracker import DeliveryTracker

    sender = make_outbound_worker(gw, connections, rc)
    if gw.outbound is not None:
        gw.outbound.on_enqueued = sender.wake
    tracker = DeliveryTracker(queue=gw.outbound_queue, connections=connections, rc=rc, broker=gw.broker, clock=gw.clock)
    return [sender, tracker]


def build_workers(gw: Gateway) -> list[Worker]:
    """The background workers of one process (outbound sender, fan-out, scheduler, …)."""
    return [*_connection_workers(gw), *_outbound_workers(gw), *_inbound_workers(gw)]


def _inbound_workers(gw: Gateway) -> list[Worker]:
    from gravity_sms.delivery.retention import RetentionWorker

    workers: list[Worker] = []
    if gw.dispatcher is not None:
        workers.append(gw.dispatcher)
    workers.append(
        RetentionWorker(
            messages=gw.store.messages,
            deliveries=gw.store.deliveries,
            clock=gw.clock,
            message_days=gw.settings.message_retention_days,
            delivery_days=gw.settings.delivery_log_retention_days,
        )
    )
    return workers


class Runtime:
    """One gateway process: the app, and (unless `workers=False`) the background workers."""

    def __init__(self, gw: Gateway, *, workers: bool = True) -> None:
        self.gw = gw
        self.workers = build_workers(gw) if workers else []
        self._tasks: list[asyncio.Task[None]] = []
        self.app: Starlette = create_app(gw, lifespan=self._lifespan)

    @contextlib.asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        await self.start()
        try:
            yield
        finally:
            await self.stop()

    async def start(self) -> None:
        for worker in self.workers:
            self._tasks.append(asyncio.create_task(self._supervise(worker), name=f"worker:{worker.name}"))

    async def _supervise(self, worker: Worker) -> None:
        """Keep a worker running; a crash is logged and the worker restarted after a pause."""
        while True:
            try:
                await worker.run()
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("worker.crashed", worker=worker.name)
                await asyncio.sleep(1.0)

    async def stop(self, deadline: float = DRAIN_SECONDS) -> None:
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=deadline)
        self._tasks.clear()

    async def close(self) -> None:
        await self.stop()
        if self.gw.ws_hub is not None:
            await self.gw.ws_hub.close()
        await self.gw.broker.close()
        if self.gw.redis is not None:
            await self.gw.redis.aclose()
        await self.gw.store.close()
        if self.gw.rc is not None:
            await self.gw.rc.aclose()
        if self.gw.dispatcher is not None:
            await self.gw.dispatcher.close()


async def prepare_database(gw: Gateway) -> None:
    """On SQLite, `serve` applies pending migrations itself (operations.md §3)."""
    if gw.db.is_sqlite:
        await migrate(gw.db)


def uvicorn_config(app: Starlette, settings: Settings) -> uvicorn.Config:
    """The server stack. WebSockets: the sans-I/O `websockets` protocol (no tasks of its own per
    connection) with the hub's direct frame writes (`FanoutProtocol`), without per-message deflate
    (a zlib context per socket costs ~100+ KB), and small inbound frames (clients only send auth);
    see docs/websocket.md for the measured figures."""
    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level="warning",
        lifespan="on",
        proxy_headers=settings.trust_proxy,
        access_log=False,
        timeout_graceful_shutdown=int(DRAIN_SECONDS),
        ws=FanoutProtocol,
        ws_per_message_deflate=False,
        ws_max_size=64 * 1024,
        ws_ping_interval=60.0,
        ws_ping_timeout=30.0,
    )


class GatewayServer(uvicorn.Server):
    """uvicorn, but WebSocket clients get a graceful 1001 ("going away") before the server stops
    (uvicorn itself would drop them with 1012 before the application hears of the shutdown)."""

    def __init__(self, config: uvicorn.Config, runtime: Runtime) -> None:
        super().__init__(config)
        self.runtime = runtime

    async def shutdown(self, sockets: list[Any] | None = None) -> None:
        hub = self.runtime.gw.ws_hub
        if hub is not None:
            await hub.close()
        await super().shutdown(sockets)


GC_GEN0_THRESHOLD = 7000


def tune_gc() -> None:
    """A long-running server's garbage collector: everything built at start-up (modules, the
    wired gateway: ~190k objects) is frozen out of the collector's scans, and young collections
    run a tenth as often. Under B4 (inbound fan-out with one endpoint hanging, ~300k live objects
    in flight) full collections of 70-190 ms, which found nothing to free, stalled every request
    several times a minute; see docs/architecture.md."""
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GC_GEN0_THRESHOLD, gen1, gen2)


async def serve(settings: Settings, *, workers: bool = True, api: bool = True) -> None:
    configure_logging(settings.log_level, settings.effective_log_format)
    gw = await build_gateway(settings)
    await prepare_database(gw)
    runtime = Runtime(gw, workers=workers)
    tune_gc()
    try:
        if api:
            server = GatewayServer(uvicorn_config(runtime.app, settings), runtime)
            log.info("gateway.listening", url=f"http://{settings.host}:{settings.port}")
            await server.serve()
        else:
            await runtime.start()
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            log.info("worker.started", workers=[w.name for w in runtime.workers])
            await stop.wait()
    finally:
        await runtime.close()
