"""The inbound fan-out worker: every stored inbound message to every app webhook and trigger.

Owns when and how often deliveries happen (api.md §6.2): once per target, concurrently, under
a global bound and a per-endpoint bound (past it a delivery waits its endpoint's turn, at most
`queue_wait`), never retried, each attempt written to the delivery log.

Durability: `messages.fanout_pending` is the outbox. A message accepted on this node is stamped
with this dispatcher's lease at insert and handed over in memory (`submit`); it is marked done
once every target was attempted. A periodic scan takes the lease of pending messages nobody
holds (accepted by an API-only node, or left by a process that died), and delivers only the
targets without a delivery-log row, so a crash after the 200 delivers each target once.
Graceful shutdown (`drain`) waits for in-flight deliveries until a deadline, then cancels the
rest and gives their leases back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import Coroutine
from datetime import datetime, timedelta
from typing import Any, Protocol

import orjson
from standardwebhooks.webhooks import Webhook

from gravity_sms.delivery.target_cache import SecretsLookup, TargetCache, WebhookDirectory
from gravity_sms.delivery.webhook_client import Attempt, WebhookClient
from gravity_sms.domain.clock import Clock
from gravity_sms.domain.fanout import (
    TEST_MESSAGE_ID,
    Delivery,
    DeliveryLog,
    Target,
    TriggerStore,
    inbound_event,
    targets_for,
    test_payload,
    trigger_payload,
)
from gravity_sms.domain.models import App, AppSecrets, Message
from gravity_sms.telemetry import LogThrottle, Metrics, get_logger

log = get_logger("gravity.dispatcher")

SCAN_INTERVAL = 5.0
SCAN_BATCH = 200
GRACE_SECONDS = 2.0
OVERLOADED = "Too many deliveries in flight to this endpoint"
# Messages stored as already fanned out (their tenant had no target), awaiting their `submit`.
SETTLED_SIZE = 4096


class _Endpoint:
    """Deliveries to one URL: at most `per_endpoint` in flight, the rest wait their turn."""

    __slots__ = ("in_flight", "slots", "timing_out", "users")

    def __init__(self, size: int) -> None:
        self.slots = asyncio.Semaphore(size)
        self.users = 0
        self.in_flight = 0
        self.timing_out = False  # the last exchange to finish timed out


class OutboxStore(Protocol):
    async def claim_fanout(
        self, owner: str, now: datetime, older_than: datetime, lease_seconds: float, limit: int
    ) -> list[Message]: ...

    async def finish_fanout(self, message_ids: list[str]) -> None: ...

    async def release_fanout(self, message_ids: list[str]) -> None: ...


def new_delivery_id() -> str:
    return "dlv_" + secrets.token_hex(12)


def signature_header(msg_id: str, at: datetime, body: bytes, app_secrets: AppSecrets) -> str:
    """Standard Webhooks `webhook-signature`: one `v1,…` per live secret, space-separated."""
    data = body.decode("utf-8")
    keys = [app_secrets.webhook_secret]
    if app_secrets.previous_secret:
        keys.append(app_secrets.previous_secret)
    return " ".join(Webhook(key).sign(msg_id, at, data) for key in keys)


class WebhookDispatcher:
    name = "webhook-dispatcher"

    def __init__(
        self,
        *,
        outbox: OutboxStore,
        log_store: DeliveryLog,
        apps: WebhookDirectory,
        triggers: TriggerStore,
        signing_secrets: SecretsLookup,
        client: WebhookClient,
        clock: Clock,
        metrics: Metrics,
        node_id: str | None = None,
        concurrency: int = 500,
        per_endpoint: int = 100,
        probes: int = 5,
        scan_interval: float = SCAN_INTERVAL,
        grace_seconds: float = GRACE_SECONDS,
        queue_wait: float | None = None,
    ) -> None:
        self.outbox = outbox
        self.log_store = log_store
        self.targets = TargetCache(apps, triggers, signing_secrets, clock)
        self.client = client
        self.clock = clock
        self.metrics = metrics
        self.node_id = node_id or "node-" + secrets.token_hex(6)
        self.scan_interval = scan_interval
        self.grace_seconds = grace_seconds
        # Longer than the slowest fan-out of one message (all targets run concurrently).
        self.lease_seconds = client.timeout * 2 + 5
        self.per_endpoint = per_endpoint
        self.probes = probes
        self._slots = asyncio.Semaphore(concurrency)
        # Waiting for a slot to one endpoint counts against no one else; bounded in time.
        self.queue_wait = client.timeout if queue_wait is None else queue_wait
        self._endpoints: dict[str, _Endpoint] = {}
        self._failure_logs = LogThrottle()
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._settled: OrderedDict[str, None] = OrderedDict()
        self._running = False

    # --- hand-off from the inbound path -------------------------------------------------------
    @property
    def lease(self) -> tuple[str | None, float]:
        return (self.node_id if self._running else None, self.lease_seconds)

    def needs_fanout(self, msg: Message) -> bool:
        """Asked by the store before it inserts `msg`: False when this running dispatcher knows
        (fresh cache) that the tenant has no app webhook and no trigger; the row is then stored
        as already fanned out, and its `submit` has nothing to do — no task, no read, no write."""
        if not self._running or not self.targets.known_empty(msg.tenant_id):
            return True
        self._settled[msg.id] = None
        if len(self._settled) > SETTLED_SIZE:  # ids whose insert lost a dedup race: no submit
            self._settled.popitem(last=False)
        return False

    def invalidate(self, tenant_id: str) -> None:
        """An app or trigger of the tenant changed: its next event reads the targets again."""
        self.targets.invalidate(tenant_id)

    def submit(self, msg: Message) -> None:
        """Start the fan-out of a just-stored message; never blocks the caller.

        Without a running dispatcher in this process the row carries no lease and a scan on
        any node picks it up.
        """
        if msg.id in self._settled:
            del self._settled[msg.id]
            return
        if self._running and msg.id not in self._tasks:
            self._spawn(msg, recovered=False)

    def _spawn(self, msg: Message, *, recovered: bool) -> None:
        task = asyncio.create_task(self._fan_out(msg, recovered), name=f"fanout:{msg.id}")
        self._tasks[msg.id] = task
        message_id = msg.id

        def forget(_task: asyncio.Task[None]) -> None:
            self._tasks.pop(message_id, None)

        task.add_done_callback(forget)

    # --- worker lifecycle ---------------------------------------------------------------------
    async def run(self) -> None:
        self._running = True
        try:
            while True:
                try:
                    await self.scan()
                except Exception:
                    log.exception("fanout.scan_failed")
                await asyncio.sleep(self.scan_interval)
        except asyncio.CancelledError:
            self._running = False
            with contextlib.suppress(Exception):
                await self.drain(self.client.timeout + 1)
            raise
        finally:
            self._running = False

    async def scan(self, *, grace: float | None = None) -> int:
        """Take and start pending messages nobody holds; returns how many were started."""
        now = self.clock.now()
        older_than = now - timedelta(seconds=self.grace_seconds if grace is None else grace)
        claimed = await self.outbox.claim_fanout(self.node_id, now, older_than, self.lease_seconds, SCAN_BATCH)
        started = 0
        for msg in claimed:
            if msg.id not in self._tasks:
                self._spawn(msg, recovered=True)
                started += 1
        if started:
            log.info("fanout.recovered", count=started)
        return started

    async def run_until_idle(self) -> None:
        """Deliver everything pending now (ignoring the grace period) and wait for it."""
        while True:
            await self._wait_tasks()
            if not await self.scan(grace=0.0) and not self._tasks:
                return

    async def _wait_tasks(self, deadline: float | None = None) -> None:
        tasks = list(self._tasks.values())
        if tasks:
            await asyncio.wait(tasks, timeout=deadline)

    async def drain(self, deadline: float) -> None:
        """Wait for in-flight fan-outs until `deadline` seconds pass, then cancel and release."""
        await self._wait_tasks(deadline)
        left = dict(self._tasks)
        for task in left.values():
            task.cancel()
        if left:
            await asyncio.wait(list(left.values()))
            await self.outbox.release_fanout(list(left))
            log.warning("fanout.drain_cancelled", count=len(left))

    async def close(self) -> None:
        await self.client.close()

    # --- one message ----------------------------------------------------------------------------
    async def _fan_out(self, msg: Message, recovered: bool) -> None:
        try:
            known = await self.targets.targets(msg.tenant_id)
            targets = targets_for(msg, known.apps, known.triggers)
            if recovered and targets:
                done = await self.log_store.delivered_keys(msg.id)
                targets = [t for t in targets if t.key not in done]
            app_body = orjson.dumps(inbound_event(msg))
            trigger_body = orjson.dumps(trigger_payload(msg)) if any(t.kind == "trigger" for t in targets) else b""
            calls: list[Coroutine[Any, Any, Delivery]] = [
                self._deliver(msg.tenant_id, msg.id, t, app_body if t.kind == "app" else trigger_body) for t in targets
            ]
            await asyncio.gather(*calls)
            await self.outbox.finish_fanout([msg.id])
        except asyncio.CancelledError:
            raise
        except Exception:
            # The message stays pending: when the lease ends, a scan delivers what is missing.
            log.exception("fanout.failed", message_id=msg.id)

    async def _headers(self, tenant_id: str, target: Target, webhook_id: str, body: bytes) -> dict[str, str]:
        if target.kind != "app" or target.app_id is None:
            return {}
        app_secrets = await self.targets.secrets(tenant_id, target.app_id)
        if app_secrets is None:
            return {}
        now = self.clock.now()
        return {
            "webhook-id": webhook_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": signature_header(webhook_id, now, body, app_secrets),
        }

    async def _attempt(self, tenant_id: str, target: Target, webhook_id: str, body: bytes) -> Attempt:
        url = target.url
        endpoint = self._endpoints.get(url)
        if endpoint is None:
            endpoint = self._endpoints[url] = _Endpoint(self.per_endpoint)
        endpoint.users += 1
        try:
            if endpoint.timing_out and endpoint.in_flight >= min(self.probes, self.per_endpoint):
                # The last exchange to finish timed out: the endpoint hangs. Only `probes`
                # deliveries stay in flight to find out when it answers again (the first success
                # gives it its whole share back); the rest fail at once — waiting would only
                # delay the same failure and hold the delivery in memory, and a hundred new
                # connections after each timeout wave would cost everyone else.
                return Attempt(None, OVERLOADED, 0)
            if endpoint.slots.locked():
                # A burst, or a slow endpoint: wait in its own line, at most `queue_wait`.
                # A hanging endpoint never takes more than its share of the global slots
                # (api.md §6.2: one slow endpoint never delays the others); what cannot get
                # a slot in time fails, unretried, instead of piling up without bound.
                started = time.perf_counter()
                try:
                    async with asyncio.timeout(self.queue_wait):
                        await endpoint.slots.acquire()
                except TimeoutError:
                    return Attempt(None, OVERLOADED, int((time.perf_counter() - started) * 1000))
            else:
                await endpoint.slots.acquire()
            endpoint.in_flight += 1
            try:
                # Signed only once it is sent (the timestamp is the sending time).
                headers = await self._headers(tenant_id, target, webhook_id, body)
                async with self._slots:
                    attempt = await self.client.post(url, body, headers)
                endpoint.timing_out = attempt.timed_out
                return attempt
            finally:
                endpoint.in_flight -= 1
                endpoint.slots.release()
        finally:
            endpoint.users -= 1
            if not endpoint.users:
                del self._endpoints[url]

    async def _deliver(self, tenant_id: str, message_id: str, target: Target, body: bytes) -> Delivery:
        webhook_id = message_id if message_id != TEST_MESSAGE_ID else "test_" + secrets.token_hex(8)
        try:
            attempt = await self._attempt(tenant_id, target, webhook_id, body)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("webhook.error", message_id=message_id)
            attempt = Attempt(None, f"Delivery error: {type(exc).__name__}", 0)
        delivery = Delivery(
            id=new_delivery_id(),
            tenant_id=tenant_id,
            app_id=target.app_id,
            trigger_id=target.trigger_id,
            message_id=message_id,
            url=target.url,
            status_code=attempt.status_code,
            success=attempt.success,
            error=attempt.error,
            duration_ms=attempt.duration_ms,
            created_at=self.clock.now(),
            body=attempt.body,
        )
        outcome = "success" if attempt.success else "failure"
        self.metrics.webhook_deliveries.labels(target.kind, outcome).inc()
        if attempt.success:
            if log.enabled_for(logging.DEBUG):
                log.debug("webhook.delivered", **self._fields(message_id, target, attempt))
        else:
            suppressed = self._failure_logs.admit(target.url)
            if suppressed is not None:
                log.warning(
                    "webhook.failed",
                    error=attempt.error,
                    suppressed=suppressed,
                    **self._fields(message_id, target, attempt),
                )
        await self.log_store.record(delivery)
        return delivery

    @staticmethod
    def _fields(message_id: str, target: Target, attempt: Attempt) -> dict[str, Any]:
        return {
            "message_id": message_id,
            "kind": target.kind,
            "app_id": target.app_id,
            "trigger_id": target.trigger_id,
            "status": attempt.status_code,
            "duration_ms": attempt.duration_ms,
        }

    # --- test-webhook (api.md §4) ---------------------------------------------------------------
    async def send_test(self, app: App) -> Delivery:
        assert app.webhook_url is not None
        body = orjson.dumps(test_payload(app.tenant_id, self.clock.now()))
        return await self._deliver(app.tenant_id, TEST_MESSAGE_ID, Target("app", app.webhook_url, app.id), body)
