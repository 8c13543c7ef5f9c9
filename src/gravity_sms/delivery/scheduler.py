"""`ConnectionScheduler`: keeps every connected RingCentral extension alive (api.md §9).

One pass (`run_until_idle()`) visits each connected extension that is due and, holding a
per-extension `try_lock` so exactly one node does the job in a cluster:
- refreshes its tokens ahead of expiry (and before the refresh token itself runs out);
- checks its webhook subscription at RingCentral every few minutes, re-creating it when missing
  (404 CMN-102) or no longer `Active` (`Blacklisted`), and renews it from three days before
  expiry (api.md: "at the latest with one day left");
- after a gap in events (first pass of this process, a re-created subscription, a failed pass
  that has recovered) and every 15 minutes as a safety net, backfills inbound SMS from
  RingCentral's message store into the inbound pipeline, which deduplicates.
Failures back off per extension (30 s doubling to an hour, never below a 429's Retry-After): an
outage never turns into a hot loop. A rejected refresh token disconnects the extension, which
then drops out of the connected set: the scheduler stops touching it.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from datetime import datetime, timedelta

from gravity_sms.domain.clock import Clock
from gravity_sms.domain.connection_store import InboundSink, StoredExtension
from gravity_sms.domain.connections import ConnectionService
from gravity_sms.domain.errors import ProviderError
from gravity_sms.domain.ports import LockManager
from gravity_sms.telemetry import get_logger

log = get_logger("gravity.scheduler")

PASS_INTERVAL = 30.0
VERIFY_INTERVAL = timedelta(minutes=10)
BACKFILL_INTERVAL = timedelta(minutes=15)
BACKOFF_BASE = 30.0
BACKOFF_MAX = 3600.0

Key = tuple[str, str]


class ConnectionScheduler:
    name = "rc-scheduler"

    def __init__(
        self,
        connections: ConnectionService,
        locks: LockManager,
        clock: Clock,
        *,
        sink: InboundSink | None = None,
        interval: float = PASS_INTERVAL,
    ) -> None:
        self.connections = connections
        self.locks = locks
        self.clock = clock
        self.sink = sink
        self.interval = interval
        self._failures: dict[Key, int] = {}
        self._not_before: dict[Key, datetime] = {}
        self._outage_since: dict[Key, datetime] = {}
        self._early: set[Key] = set()
        self._verified_at: dict[Key, datetime] = {}
        self._backfilled_at: dict[Key, datetime] = {}
        self._gap: set[Key] = set()
        self._wake = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        while True:
            try:
                await self.run_until_idle()
            except Exception:
                log.exception("scheduler.pass_failed")
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.interval)

    async def run_until_idle(self) -> None:
        """One pass over the extensions that are due."""
        now = self.clock.now()
        for ext in await self.connections.store.all_connected():
            key = (ext.tenant_id, ext.extension_id)
            not_before = self._not_before.get(key)
            early = not_before is not None and now < not_before
            if early and not self._recovered(key):
                continue
            async with self.locks.try_lock(f"rc-maintain:{ext.tenant_id}:{ext.extension_id}", ttl=120.0) as held:
                if not held:
                    continue
                if early:
                    # One early visit: if it fails again, the backoff goes on as it would have.
                    self._outage_since.pop(key, None)
                    self._early.add(key)
                await self._visit(ext, key)

    async def _visit(self, ext: StoredExtension, key: Key) -> None:
        try:
            await self._maintain(ext, key)
        except ProviderError as exc:
            if exc.code == "not-connected":
                self._forget(key)
                return
            self._back_off(key, exc.retry_after, exc.code, rate_limited=exc.status == 429)
        except Exception:
            log.exception("scheduler.extension_failed", tenant_id=ext.tenant_id, extension_id=ext.extension_id)
            self._back_off(key, None, "internal")
        else:
            self._failures.pop(key, None)
            self._not_before.pop(key, None)
            self._outage_since.pop(key, None)
            self._early.discard(key)

    async def _maintain(self, ext: StoredExtension, key: Key) -> None:
        tenant_id, extension_id = key
        await self.connections.refresh_if_due(tenant_id, extension_id)
        now = self.clock.now()
        last_verified = self._verified_at.get(key)
        verify = last_verified is None or now - last_verified >= VERIFY_INTERVAL
        action = await self.connections.maintain_subscription(tenant_id, extension_id, verify=verify)
        if verify:
            self._verified_at[key] = now
        if action in ("created", "recreated"):
            self._gap.add(key)
        if action != "ok":
            log.info("scheduler.subscription", tenant_id=tenant_id, extension_id=extension_id, action=action)
        if self.sink is None:
            return
        last_backfill = self._backfilled_at.get(key)
        if key in self._gap or last_backfill is None or now - last_backfill >= BACKFILL_INTERVAL:
            await self.connections.backfill(tenant_id, extension_id, self.sink)
            self._backfilled_at[key] = now
            self._gap.discard(key)

    def _recovered(self, key: Key) -> bool:
        """A backoff after an outage ends early once any call to RingCentral succeeded since it
        began (a send, a lookup, another extension's maintenance): the next pass visits the
        extension, so subscriptions are re-created and missed SMS backfilled within a pass of
        RingCentral's return, not after the backoff's last, longest wait. A backoff after a 429
        (RingCentral's rate limit for this extension) is kept."""
        since = self._outage_since.get(key)
        last_success = self.connections.last_success
        return since is not None and last_success is not None and last_success > since

    def _back_off(self, key: Key, retry_after: float | None, code: str | None, *, rate_limited: bool = False) -> None:
        failures = self._failures.get(key, 0) + 1
        self._failures[key] = failures
        if not rate_limited and key not in self._early:
            self._outage_since[key] = self.clock.now()
        else:
            self._outage_since.pop(key, None)
        self._early.discard(key)
        delay = min(BACKOFF_BASE * 2 ** (failures - 1), BACKOFF_MAX)
        delay *= random.uniform(1.0, 1.2)  # jitter: nodes and extensions do not retry in step
        if retry_after is not None:
            delay = max(delay, retry_after)
        self._not_before[key] = self.clock.now() + timedelta(seconds=delay)
        # Whatever failed may have cost events (an outage): backfill once it recovers.
        self._gap.add(key)
        log.warning(
            "scheduler.backoff", tenant_id=key[0], extension_id=key[1], code=code, failures=failures, seconds=int(delay)
        )

    def _forget(self, key: Key) -> None:
        for table in (self._failures, self._not_before, self._outage_since, self._verified_at, self._backfilled_at):
            table.pop(key, None)
        self._gap.discard(key)
        self._early.discard(key)

    def backoff_until(self, tenant_id: str, extension_id: str) -> datetime | None:
        """When the extension is next visited after a failure (None: next pass)."""
        return self._not_before.get((tenant_id, extension_id))
