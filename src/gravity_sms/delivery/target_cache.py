"""Where a tenant's inbound messages go, cached per tenant: its apps with a webhookUrl, its
triggers, and the apps' signing secrets.

Owns how long this node trusts what it read. An entry is dropped at once when an app or trigger
of the tenant changes through this process (`invalidate`, wired to the app and trigger
services), and lives at most `ttl` seconds (≤ 1 s) so a change made through another node of a
cluster is seen within a second (docs/webhooks.md). Concurrent misses of one tenant share one
read of each table. It must not decide anything about delivery itself (the dispatcher does).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any, Protocol

from gravity_sms.domain.clock import Clock
from gravity_sms.domain.fanout import Trigger, TriggerStore
from gravity_sms.domain.models import App, AppSecrets

TTL_SECONDS = 1.0
MAX_ENTRIES = 4096


class WebhookDirectory(Protocol):
    async def list_webhook_targets(self, tenant_id: str) -> list[App]: ...


SecretsLookup = Callable[[str], Awaitable[AppSecrets | None]]


@dataclass(frozen=True, slots=True)
class TenantTargets:
    apps: list[App]
    triggers: list[Trigger]
    expires: float

    @property
    def empty(self) -> bool:
        return not self.apps and not self.triggers


class TargetCache:
    def __init__(
        self,
        apps: WebhookDirectory,
        triggers: TriggerStore,
        signing_secrets: SecretsLookup,
        clock: Clock,
        *,
        ttl: float = TTL_SECONDS,
        max_entries: int = MAX_ENTRIES,
    ) -> None:
        self.apps = apps
        self.triggers = triggers
        self.signing_secrets = signing_secrets
        self.clock = clock
        self.ttl = ttl
        self.max_entries = max_entries
        self._targets: dict[str, TenantTargets] = {}
        self._loading: dict[str, asyncio.Future[TenantTargets]] = {}
        # app id -> (tenant id, secrets, expiry)
        self._secrets: dict[str, tuple[str, AppSecrets | None, float]] = {}
        self._loading_secrets: dict[str, asyncio.Future[AppSecrets | None]] = {}
        # Bumped by every invalidation: a read that started before one is not kept.
        self._generation = 0

    # --- targets -------------------------------------------------------------------------------
    def known_empty(self, tenant_id: str) -> bool:
        """True only when a fresh entry says the tenant has no app webhook and no trigger."""
        entry = self._targets.get(tenant_id)
        return entry is not None and entry.empty and entry.expires > self.clock.monotonic()

    async def targets(self, tenant_id: str) -> TenantTargets:
        entry = self._targets.get(tenant_id)
        if entry is not None and entry.expires > self.clock.monotonic():
            return entry
        loading = self._loading.get(tenant_id)
        if loading is None:
            loading = asyncio.ensure_future(self._load(tenant_id, self._generation))
            self._loading[tenant_id] = loading
            loading.add_done_callback(_forget(self._loading, tenant_id))
        # A waiter that is cancelled must not cancel the read the others share.
        return await asyncio.shield(loading)

    async def _load(self, tenant_id: str, generation: int) -> TenantTargets:
        apps = await self.apps.list_webhook_targets(tenant_id)
        triggers = await self.triggers.for_tenant(tenant_id)
        entry = TenantTargets(apps, triggers, self.clock.monotonic() + self.ttl)
        if generation == self._generation:
            if len(self._targets) >= self.max_entries:
                self._targets.clear()
            self._targets[tenant_id] = entry
        return entry

    # --- signing secrets -----------------------------------------------------------------------
    async def secrets(self, tenant_id: str, app_id: str) -> AppSecrets | None:
        now = self.clock.monotonic()
        cached = self._secrets.get(app_id)
        if cached is not None and cached[2] > now:
            found = cached[1]
        else:
            loading = self._loading_secrets.get(app_id)
            if loading is None:
                loading = asyncio.ensure_future(self._load_secrets(tenant_id, app_id, self._generation))
                self._loading_secrets[app_id] = loading
                loading.add_done_callback(_forget(self._loading_secrets, app_id))
            found = await asyncio.shield(loading)
        if found is not None and found.previous_secret and not self._previous_live(found):
            # Cached across the end of the 24 h rotation grace: sign with the current one only.
            found = replace(found, previous_secret=None)
        return found

    async def _load_secrets(self, tenant_id: str, app_id: str, generation: int) -> AppSecrets | None:
        found = await self.signing_secrets(app_id)
        if generation == self._generation:
            if len(self._secrets) >= self.max_entries:
                self._secrets.clear()
            self._secrets[app_id] = (tenant_id, found, self.clock.monotonic() + self.ttl)
        return found

    def _previous_live(self, found: AppSecrets) -> bool:
        return found.previous_expires_at is not None and found.previous_expires_at > self.clock.now()

    # --- invalidation --------------------------------------------------------------------------
    def invalidate(self, tenant_id: str) -> None:
        """An app or trigger of the tenant changed here: the next event reads them again."""
        self._generation += 1
        self._targets.pop(tenant_id, None)
        self._loading.pop(tenant_id, None)
        for app_id in [a for a, (t, _, _) in self._secrets.items() if t == tenant_id]:
            del self._secrets[app_id]
        # A secrets read under way may predate the change; later callers start a new one.
        self._loading_secrets.clear()


def _forget(loading: dict[str, Any], key: str) -> Callable[[asyncio.Future[Any]], None]:
    """Done-callback of a shared read: unlist it (unless replaced) and retrieve its error."""

    def done(future: asyncio.Future[Any]) -> None:
        if loading.get(key) is future:
            del loading[key]
        if not future.cancelled():
            future.exception()  # the waiters re-raise it; retrieved here so none is left unread

    return done
