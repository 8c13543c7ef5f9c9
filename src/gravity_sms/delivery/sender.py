"""`OutboundWorker`: takes queued messages off the durable queue and sends them through RingCentral.

Owns the outbound pipeline of api.md §5 points 2-7 for one claimed message: tenant and connection
checks, the number → extension lookup, pacing (`delivery.pacing`), crash-safe resumption (a
message that may already have reached RingCentral is first looked up in its message store and
adopted), multi-part sends with recorded progress, the retry/fail decision from the typed
`ProviderError`, and an `sms_status` event for every status change. It owns no SQL (that is
`store.queue`) and no HTTP (that is the RingCentral client behind `Connections.call`).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import secrets
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any, Protocol

from gravity_sms.delivery.pacing import ExtensionPacer, NumberLimit
from gravity_sms.domain.clock import Clock, isoformat_z
from gravity_sms.domain.errors import ConnectionRevoked, ProviderError, RefreshFailed
from gravity_sms.domain.models import Tenant
from gravity_sms.domain.outbound import (
    IDEMPOTENCY_TTL_SECONDS,
    MAX_ATTEMPTS,
    NOT_CONNECTED,
    TENANT_INACTIVE,
    Connections,
    QueuedMessage,
    SendQueue,
    not_registered,
    retry_delay,
    split_body,
)
from gravity_sms.domain.ports import Broker, RateLimiter
from gravity_sms.domain.provider import RcMessage, RingCentralApi, SentSms
from gravity_sms.telemetry import Metrics, get_logger

log = get_logger("gravity.outbound")

EVENTS_CHANNEL = "gravity.events"
LEASE_SECONDS = 120.0
# Re-check of a message held back by the per-number limit (api.md §5 point 5: about every 5 s).
LIMIT_RECHECK = 5.0
# How far before the claim to look for an already accepted send (clock skew, queueing at RC).
RECONCILE_MARGIN = timedelta(minutes=5)
RECONCILE_PAGES = 10
# A message whose previous attempt may have reached RingCentral is failed for an unreachable
# message store only this long after it was created (the lookup is retried with backoff until then).
LOOKUP_GIVE_UP = timedelta(hours=24)
LOOKUP_BACKOFF = 0.5
LOOKUP_MAX_DELAY = 300.0
FIRST_TRACK_DELAY = timedelta(seconds=5)
MIN_CLAIM_GAP = 0.2
# The queue metrics cost a scan of the queue: refreshed at most this often.
STATS_INTERVAL = 5.0
# Expired idempotency keys are reused lazily; this drops them so the table stays small.
PURGE_INTERVAL = 3600.0


class TenantLookup(Protocol):
    async def get(self, tenant_id: str) -> Tenant | None: ...


class AttemptQueue(SendQueue, Protocol):
    """The queue as the worker uses it: `SendQueue` plus attempt accounting (store/queue.py). An
    attempt counts once it started and was not cut short by a crash: `begin_attempt` answers the
    count including the attempt it starts (None: lease lost), re-doing rather than counting again
    an attempt whose node died; `settled=False` gives a message back without an outcome (a
    deferral, a failed message-store lookup), so such a pending re-do stays free."""

    async def begin_attempt(
        self, message_id: str, owner: str, now: datetime, lease_until: datetime, extension_id: str
    ) -> int | None: ...

    async def reschedule(
        self, message_id: str, owner: str, until: datetime, now: datetime, *, in_doubt: bool, settled: bool = True
    ) -> bool: ...


def status_event(
    message_id: str,
    app_id: str | None,
    tenant_id: str,
    status: str,
    at: datetime,
    *,
    rc_message_id: str | None = None,
    error: str | None = None,
) -> dict[str, Any]:
    """The `sms_status` event of api.md §7."""
    event: dict[str, Any] = {
        "type": "sms_status",
        "messageId": message_id,
        "appId": app_id,
        "tenantId": tenant_id,
        "status": status,
    }
    if rc_message_id is not None:
        event["rcMessageId"] = rc_message_id
    if error is not None:
        event["error"] = error
    event["timestamp"] = isoformat_z(at)
    return event


def describe(err: ProviderError) -> str:
    """The `error` a user sees: the contract's messages, else RingCentral's `<code>: <message>`."""
    if isinstance(err, ConnectionRevoked) or err.code == "not-connected":
        return NOT_CONNECTED
    return str(err)


def in_doubt(err: ProviderError) -> bool:
    """Whether RingCentral may have accepted the request although we saw a failure: no answer, a
    5xx, or a success answer the client could not read (`bad-answer`). A token that could not
    be refreshed means the call never went."""
    if isinstance(err, RefreshFailed):
        return False
    return err.status is None or err.status >= 500 or 200 <= err.status < 300


class _Outcome(Exception):
    """Internal: ends the processing of one message early (already recorded)."""


class OutboundWorker:
    name = "outbound"

    def __init__(
        self,
        *,
        queue: AttemptQueue,
        tenants: TenantLookup,
        connections: Connections,
        rc: RingCentralApi,
        broker: Broker,
        limiter: RateLimiter,
        clock: Clock,
        metrics: Metrics,
        send_rate_per_number: int,
        owner: str | None = None,
        batch_size: int = 64,
        per_tenant: int = 16,
        per_number: int = 8,
        concurrency: int = 16,
        idle_interval: float = 0.5,
        lease_seconds: float = LEASE_SECONDS,
        pacer: ExtensionPacer | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.queue = queue
        self.tenants = tenants
        self.connections = connections
        self.rc = rc
        self.broker = broker
        self.clock = clock
        self.metrics = metrics
        self.numbers = NumberLimit(limiter, send_rate_per_number)
        self.pacer = pacer or ExtensionPacer(clock)
        self.owner = owner or f"outbound-{secrets.token_hex(6)}"
        self.batch_size = batch_size
        self.per_tenant = per_tenant
        self.per_number = per_number
        self.idle_interval = idle_interval
        self.lease_seconds = lease_seconds
        self.rng = rng or random.Random()
        self._slots = asyncio.Semaphore(concurrency)
        self._wake = asyncio.Event()
        self._last_purge: float | None = None
        self._last_stats: float | None = None
        # (tenant, from number) → monotonic time until which claims leave its rows alone.
        self._held: dict[tuple[str, str], float] = {}

    # --- lifecycle ----------------------------------------------------------------------------
    def wake(self) -> None:
        """A message was enqueued in this process: look now instead of at the next tick."""
        self._wake.set()

    async def run(self) -> None:
        """Until cancelled; on the way out every lease still held is given back."""
        try:
            while True:
                try:
                    claimed = await self.run_once()
                except Exception:
                    log.exception("outbound.cycle_failed")
                    claimed = 0
                if claimed < self.batch_size:
                    # Let arrivals gather: under a stream of sends a claim per request would
                    # cost more than the sends themselves.
                    await asyncio.sleep(MIN_CLAIM_GAP)
                if claimed == 0:
                    self._wake.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), timeout=self.idle_interval)
        finally:
            await asyncio.shield(self._release())

    async def _release(self) -> None:
        try:
            released = await self.queue.release(self.owner, self.clock.now())
            if released:
                log.info("outbound.leases_released", count=released)
        except Exception:
            log.exception("outbound.release_failed")

    async def run_until_idle(self) -> None:
        """Process until nothing is due at the clock's current time (tests, burst mode)."""
        while await self.run_once():
            pass

    async def run_once(self) -> int:
        """One claim and its processing; answers how many messages were claimed."""
        now = self.clock.now()
        mono = self.clock.monotonic()
        for key in [k for k, until in self._held.items() if until <= mono]:
            del self._held[key]
        claimed = await self.queue.claim(
            self.owner, now, self.lease_seconds, self.batch_size, self.per_tenant, self.per_number, list(self._held)
        )
        if claimed:
            tenants: dict[str, Tenant | None] = {}
            for tenant_id in {m.tenant_id for m in claimed}:
                tenants[tenant_id] = await self.tenants.get(tenant_id)
            await asyncio.gather(*(self._guarded(m, tenants.get(m.tenant_id)) for m in claimed))
        await self._update_metrics()
        await self._purge_keys()
        return len(claimed)

    async def _purge_keys(self) -> None:
        mono = self.clock.monotonic()
        if self._last_purge is not None and mono - self._last_purge < PURGE_INTERVAL:
            return
        self._last_purge = mono
        try:
            await self.queue.purge_idempotency_keys(self.clock.now() - timedelta(seconds=IDEMPOTENCY_TTL_SECONDS))
        except Exception:
            log.exception("outbound.purge_failed")

    async def _update_metrics(self) -> None:
        mono = self.clock.monotonic()
        if self._last_stats is not None and mono - self._last_stats < STATS_INTERVAL:
            return
        self._last_stats = mono
        try:
            depth, oldest = await self.queue.stats(self.clock.now())
        except Exception:
            log.exception("outbound.stats_failed")
            return
        self.metrics.queue_depth.set(depth)
        self.metrics.queue_oldest_age.set(oldest)

    async def _guarded(self, msg: QueuedMessage, tenant: Tenant | None) -> None:
        async with self._slots:
            try:
                await self._process(msg, tenant)
            except _Outcome:
                pass
            except asyncio.CancelledError:
                raise
            except Exception:
                # A bug or an unexpected failure around one message: give it back for a later,
                # careful (message-store checked) retry rather than lose or duplicate it.
                log.exception("outbound.unexpected_error", message_id=msg.id)
                await self._retry(msg, None, delay=retry_delay(msg.attempts + 1, rng=self.rng), doubt=True)

    # --- one message --------------------------------------------------------------------------
    async def _process(self, msg: QueuedMessage, tenant: Tenant | None) -> None:
        if tenant is None or tenant.status != "active":
            await self._fail(msg, TENANT_INACTIVE)
            return
        extensions = await self.connections.connected_extensions(msg.tenant_id)
        if not extensions:
            await self._fail(msg, NOT_CONNECTED)
            return
        number = await self.connections.find_number(msg.tenant_id, msg.from_number)
        if number is None or not number.sms_enabled:
            await self._fail(msg, not_registered(msg.from_number))
            return
        extension_id = number.extension_id
        parts = split_body(msg.body)
        parts_sent = msg.parts_sent
        rc_id = msg.rc_message_id

        if msg.status == "sending" and msg.claimed_at is not None and parts_sent < len(parts):
            # The previous attempt may have reached RingCentral (crash, timeout, dropped answer).
            found = await self._reconcile(msg, msg.extension_id or extension_id, parts[parts_sent])
            if found is not None:
                parts_sent += 1
                rc_id = rc_id or found.id
                first_id = rc_id if parts_sent == 1 else None
                await self.queue.part_accepted(msg.id, self.owner, parts_sent, first_id, self.clock.now())
                self.metrics.sends.labels("adopted").inc()
                log.info("outbound.adopted", message_id=msg.id, part=parts_sent)
        if parts_sent >= len(parts):
            await self._sent(msg, rc_id)
            return

        lane = f"{msg.tenant_id}:{extension_id}"
        wait = self.pacer.wait_time(lane)
        if wait > 0:
            self._hold(msg, wait)
            await self._defer(msg, wait, reason="extension_paced")
            return
        if parts_sent == 0:
            wait = await self.numbers.acquire(msg.tenant_id, msg.from_number)
            if wait > 0:
                wait = min(wait, LIMIT_RECHECK)
                self._hold(msg, wait)
                await self._defer(msg, wait, reason="number_limit")
                return
        self.pacer.reserve(lane)

        now = self.clock.now()
        lease_until = now + timedelta(seconds=self.lease_seconds)
        attempt = await self.queue.begin_attempt(msg.id, self.owner, now, lease_until, extension_id)
        if attempt is None:
            log.warning("outbound.lease_lost", message_id=msg.id)
            return
        if msg.status == "queued":
            await self._publish(msg, "sending")
        for index in range(parts_sent, len(parts)):
            if index > parts_sent:
                # Each part is a request at RingCentral's limit: when the lane is full, give the
                # message back with its progress recorded (nothing in doubt) and resume later.
                wait = self.pacer.wait_time(lane)
                if wait > 0:
                    now = self.clock.now()
                    await self.queue.reschedule(msg.id, self.owner, now + timedelta(seconds=wait), now, in_doubt=False)
                    return
                self.pacer.reserve(lane)
            try:
                sent = await self.connections.call(
                    msg.tenant_id, extension_id, self._send_call(msg.from_number, msg.to_number, parts[index])
                )
            except ProviderError as err:
                await self._provider_failure(msg, lane, err, attempts=attempt)
                return
            self.pacer.observe(lane, sent.rate)
            if index == 0:
                rc_id = sent.message.id
            await self.queue.part_accepted(
                msg.id, self.owner, index + 1, sent.message.id if index == 0 else None, self.clock.now()
            )
        await self._sent(msg, rc_id)

    def _hold(self, msg: QueuedMessage, seconds: float) -> None:
        """Leave this number's other rows alone until `seconds` pass: a backlog of thousands
        behind a full number costs nothing per claim, and they stay `queued` untouched."""
        key = (msg.tenant_id, msg.from_number)
        self._held[key] = max(self._held.get(key, 0.0), self.clock.monotonic() + seconds)

    def _send_call(self, from_number: str, to_number: str, text: str) -> Callable[[str], Awaitable[SentSms]]:
        async def call(token: str) -> SentSms:
            return await self.rc.send_sms(token, from_number=from_number, to_number=to_number, text=text)

        return call

    def _list_call(self, since: datetime, page: int) -> Callable[[str], Awaitable[list[RcMessage]]]:
        async def call(token: str) -> list[RcMessage]:
            return await self.rc.list_messages(token, direction="Outbound", date_from=since, per_page=100, page=page)

        return call

    async def _reconcile(self, msg: QueuedMessage, extension_id: str, text: str) -> RcMessage | None:
        assert msg.claimed_at is not None
        since = msg.claimed_at - RECONCILE_MARGIN
        for page in range(1, RECONCILE_PAGES + 1):
            try:
                records = await self.connections.call(msg.tenant_id, extension_id, self._list_call(since, page))
            except ProviderError as err:
                # Cannot tell whether it went: never risk a duplicate, look again later.
                await self._lookup_failure(msg, err)
                raise _Outcome() from err
            for record in records:
                if (
                    record.direction == "Outbound"
                    and record.from_number == msg.from_number
                    and msg.to_number in record.to_numbers
                    and record.text == text
                    and not (
                        msg.parts_sent == 0 and await self.queue.rc_id_in_use(msg.tenant_id, msg.to_number, record.id)
                    )
                ):
                    return record
            if len(records) < 100:
                break
        return None

    # --- outcomes -----------------------------------------------------------------------------
    async def _provider_failure(
        self,
        msg: QueuedMessage,
        lane: str,
        err: ProviderError,
        *,
        attempts: int,
    ) -> None:
        if err.status == 429:
            self.pacer.pause(lane, err.retry_after)
            log.warning("outbound.rate_limited", message_id=msg.id, retry_after=err.retry_after)
        if not err.retryable or isinstance(err, ConnectionRevoked):
            await self._fail(msg, describe(err))
            return
        if attempts >= MAX_ATTEMPTS:
            await self._fail(msg, describe(err))
            return
        delay = retry_delay(attempts, err.retry_after, self.rng)
        self.metrics.sends.labels("retried").inc()
        log.info("outbound.retry", message_id=msg.id, attempts=attempts, delay=round(delay, 2), code=err.code)
        await self._retry(msg, err, delay=delay, doubt=in_doubt(err))

    async def _lookup_failure(self, msg: QueuedMessage, err: ProviderError) -> None:
        """The message-store lookup before a re-send failed. The lookup is not a send attempt: a
        transient failure of it never spends or ends the message's attempts (after a crash during
        the last attempt, RingCentral may well have accepted the text), so the message stays
        `sending` and is looked up again with backoff. Only a permanent answer, or a lookup still
        failing `LOOKUP_GIVE_UP` after the message was created, fails it."""
        permanent = not err.retryable or isinstance(err, ConnectionRevoked)
        if permanent or self.clock.now() - msg.created_at >= LOOKUP_GIVE_UP:
            await self._fail(msg, describe(err))
            return
        # Backs off with the time the answer has been in doubt (a lookup is no attempt, so the
        # attempt count does not grow): ~half of it, at least the usual retry delay, at most
        # LOOKUP_MAX_DELAY; during an outage the lookups thin out instead of looping.
        in_doubt_for = (self.clock.now() - (msg.claimed_at or msg.created_at)).total_seconds()
        delay = max(retry_delay(max(msg.attempts, 1), err.retry_after, self.rng), in_doubt_for * LOOKUP_BACKOFF)
        delay = min(delay, max(LOOKUP_MAX_DELAY, err.retry_after or 0.0))
        log.info("outbound.lookup_retry", message_id=msg.id, attempts=msg.attempts, delay=round(delay, 2))
        await self._retry(msg, err, delay=delay, doubt=True, settled=False)

    async def _retry(
        self, msg: QueuedMessage, err: ProviderError | None, *, delay: float, doubt: bool, settled: bool = True
    ) -> None:
        now = self.clock.now()
        await self.queue.reschedule(
            msg.id, self.owner, now + timedelta(seconds=delay), now, in_doubt=doubt, settled=settled
        )

    async def _defer(self, msg: QueuedMessage, seconds: float, *, reason: str) -> None:
        now = self.clock.now()
        # A deferral never touches what is in doubt: a pending lookup stays pending, and an
        # attempt cut short by a crash stays to be re-done (it records no outcome).
        await self.queue.reschedule(
            msg.id,
            self.owner,
            now + timedelta(seconds=seconds),
            now,
            in_doubt=msg.claimed_at is not None,
            settled=False,
        )
        self.metrics.sends.labels("deferred").inc()
        log.debug("outbound.deferred", message_id=msg.id, reason=reason, seconds=round(seconds, 2))

    async def _fail(self, msg: QueuedMessage, error: str) -> None:
        now = self.clock.now()
        if await self.queue.mark_failed(msg.id, error, now, owner=self.owner):
            self.metrics.sends.labels("failed").inc()
            log.info("outbound.failed", message_id=msg.id, tenant_id=msg.tenant_id, error=error)
            await self._publish(msg, "failed", error=error)

    async def _sent(self, msg: QueuedMessage, rc_id: str | None) -> None:
        now = self.clock.now()
        if await self.queue.mark_sent(msg.id, self.owner, rc_id, now, now + FIRST_TRACK_DELAY):
            self.metrics.sends.labels("sent").inc()
            log.info("outbound.sent", message_id=msg.id, tenant_id=msg.tenant_id, rc_message_id=rc_id)
            await self._publish(msg, "sent", rc_message_id=rc_id)

    async def _publish(
        self, msg: QueuedMessage, status: str, *, rc_message_id: str | None = None, error: str | None = None
    ) -> None:
        await publish_status(
            self.broker,
            status_event(
                msg.id, msg.app_id, msg.tenant_id, status, self.clock.now(), rc_message_id=rc_message_id, error=error
            ),
        )


async def publish_status(broker: Broker, event: dict[str, Any]) -> None:
    try:
        await broker.publish(EVENTS_CHANNEL, event)
    except Exception:
        # The row is the truth; a lost event is recoverable from the status API.
        log.exception("outbound.publish_failed", message_id=event.get("messageId"), status=event.get("status"))
