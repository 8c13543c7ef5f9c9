"""Periodic clean-up: messages past GRAVITY_MESSAGE_RETENTION_DAYS, delivery-log rows past
GRAVITY_DELIVERY_LOG_RETENTION_DAYS (operations.md §2).

Deletes in small batches, one short transaction each, so neither database holds the tables
for long and the hot paths keep going between batches.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Protocol

from gravity_sms.domain.clock import Clock
from gravity_sms.telemetry import get_logger

log = get_logger("gravity.retention")

BATCH = 1000
INTERVAL_SECONDS = 3600.0


class Expiring(Protocol):
    async def delete_older_than(self, cutoff: datetime, batch: int) -> int: ...


class RetentionWorker:
    name = "retention"

    def __init__(
        self,
        *,
        messages: Expiring,
        deliveries: Expiring,
        clock: Clock,
        message_days: int,
        delivery_days: int,
        batch: int = BATCH,
        interval: float = INTERVAL_SECONDS,
    ) -> None:
        self.messages = messages
        self.deliveries = deliveries
        self.clock = clock
        self.message_days = message_days
        self.delivery_days = delivery_days
        self.batch = batch
        self.interval = interval

    async def _purge(self, table: Expiring, days: int) -> int:
        cutoff = self.clock.now() - timedelta(days=days)
        total = 0
        while True:
            removed = await table.delete_older_than(cutoff, self.batch)
            total += removed
            if removed < self.batch:
                return total
            await asyncio.sleep(0)  # let other work in between batches

    async def run_until_idle(self) -> None:
        messages = await self._purge(self.messages, self.message_days)
        deliveries = await self._purge(self.deliveries, self.delivery_days)
        if messages or deliveries:
            log.info("retention.purged", messages=messages, deliveries=deliveries)

    async def run(self) -> None:
        while True:
            try:
                await self.run_until_idle()
            except Exception:
                log.exception("retention.failed")
            await asyncio.sleep(self.interval)
