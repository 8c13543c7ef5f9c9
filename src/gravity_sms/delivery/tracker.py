"""`DeliveryTracker`: follows `sent` messages to the carrier's outcome (api.md §5 point 8).

RingCentral pushes nothing per outbound message (ringcentral.md §4), so the tracker polls the
message record with a growing interval (5 s, then half the message's age, at most an hour) for at
most 24 h, and moves the message to `delivered`, or to `failed` with RingCentral's
`deliveryErrorCode`. Moves are guarded in the store, so a status never moves backwards. It owns
the polling schedule only; the rows are `store.queue`'s, the HTTP the RingCentral client's.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from gravity_sms.delivery.sender import publish_status, status_event
from gravity_sms.domain.clock import Clock
from gravity_sms.domain.errors import ProviderError
from gravity_sms.domain.outbound import Connections, SendQueue, TrackedMessage
from gravity_sms.domain.ports import Broker
from gravity_sms.domain.provider import RcMessage, RingCentralApi
from gravity_sms.telemetry import get_logger

log = get_logger("gravity.tracker")

MIN_INTERVAL = 5.0
MAX_INTERVAL = 3600.0
TRACK_WINDOW = timedelta(hours=24)
CLAIM_LEASE = 60.0
FAILED_STATUSES = {"DeliveryFailed": "Delivery failed", "SendingFailed": "Sending failed"}


def next_poll(now: datetime, sent_at: datetime) -> datetime:
    """Half the message's age, between 5 s and an hour: about 1.5 times longer each poll, ~25 polls a day."""
    age = (now - sent_at).total_seconds()
    return now + timedelta(seconds=min(MAX_INTERVAL, max(MIN_INTERVAL, age / 2)))


def delivery_error(record: RcMessage) -> str:
    label = FAILED_STATUSES.get(record.status, record.status)
    return f"{record.error_code}: {label}" if record.error_code else label


class DeliveryTracker:
    name = "tracker"

    def __init__(
        self,
        *,
        queue: SendQueue,
        connections: Connections,
        rc: RingCentralApi,
        broker: Broker,
        clock: Clock,
        batch_size: int = 50,
        concurrency: int = 8,
        idle_interval: float = 1.0,
    ) -> None:
        self.queue = queue
        self.connections = connections
        self.rc = rc
        self.broker = broker
        self.clock = clock
        self.batch_size = batch_size
        self.idle_interval = idle_interval
        self._slots = asyncio.Semaphore(concurrency)

    async def run(self) -> None:
        while True:
            try:
                polled = await self.run_once()
            except Exception:
                log.exception("tracker.cycle_failed")
                polled = 0
            if polled == 0:
                await asyncio.sleep(self.idle_interval)

    async def run_until_idle(self) -> None:
        while await self.run_once():
            pass

    async def run_once(self) -> int:
        due = await self.queue.claim_tracking(self.clock.now(), CLAIM_LEASE, self.batch_size)
        await asyncio.gather(*(self._guarded(t) for t in due))
        return len(due)

    async def _guarded(self, tracked: TrackedMessage) -> None:
        async with self._slots:
            try:
                await self._poll(tracked)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("tracker.unexpected_error", message_id=tracked.id)
                with contextlib.suppress(Exception):
                    await self._reschedule(tracked)

    async def _poll(self, tracked: TrackedMessage) -> None:
        now = self.clock.now()
        if tracked.rc_message_id is None or tracked.extension_id is None:
            await self.queue.schedule_tracking(tracked.id, None)
            return
        if tracked.track_until is not None and now >= tracked.track_until:
            log.info("tracker.gave_up", message_id=tracked.id)
            await self.queue.schedule_tracking(tracked.id, None)
            return
        try:
            record = await self.connections.call(
                tracked.tenant_id, tracked.extension_id, self._get_call(tracked.rc_message_id)
            )
        except ProviderError as err:
            if err.status == 404:
                log.warning("tracker.record_missing", message_id=tracked.id)
                await self.queue.schedule_tracking(tracked.id, None)
            else:
                log.info("tracker.poll_failed", message_id=tracked.id, code=err.code)
                await self._reschedule(tracked)
            return
        if record.status == "Delivered":
            if await self.queue.mark_delivered(tracked.id, self.clock.now()):
                log.info("tracker.delivered", message_id=tracked.id)
                await self._publish(tracked, "delivered")
        elif record.status in FAILED_STATUSES:
            error = delivery_error(record)
            if await self.queue.mark_delivery_failed(tracked.id, error, self.clock.now()):
                log.info("tracker.delivery_failed", message_id=tracked.id, code=record.error_code)
                await self._publish(tracked, "failed", error=error)
        else:
            await self._reschedule(tracked)

    def _get_call(self, rc_message_id: str) -> Callable[[str], Awaitable[RcMessage]]:
        async def call(token: str) -> RcMessage:
            return await self.rc.get_message(token, rc_message_id)

        return call

    async def _reschedule(self, tracked: TrackedMessage) -> None:
        now = self.clock.now()
        sent_at = tracked.track_until - TRACK_WINDOW if tracked.track_until is not None else now
        await self.queue.schedule_tracking(tracked.id, next_poll(now, sent_at))

    async def _publish(self, tracked: TrackedMessage, status: str, *, error: str | None = None) -> None:
        event = status_event(
            tracked.id,
            tracked.app_id,
            tracked.tenant_id,
            status,
            self.clock.now(),
            rc_message_id=tracked.rc_message_id,
            error=error,
        )
        await publish_status(self.broker, event)
