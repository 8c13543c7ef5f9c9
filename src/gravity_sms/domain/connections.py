"""RingCentral connections: tokens, numbers, subscriptions, the connect flow and backfill.

`ConnectionService` is what the rest of the gateway calls to talk to RingCentral on behalf of a
tenant's extension (`call()`), to resolve a from-number (`find_number()`), and what the API's
connect routes and the `ConnectionScheduler` drive. It owns the rules of api.md §9 and
ringcentral.md §1-§2: tokens encrypted at rest; refresh single-flight per extension across the
cluster (RingCentral refresh tokens are single use, so two concurrent refreshes would kill the
connection); a rejected refresh token disconnects the extension and is never retried; one webhook
subscription per extension with a fresh verification token stored only as a hash.

Standard library only; HTTP is behind `RingCentralApi`, storage behind `ConnectionStore`.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, TypeVar

from gravity_sms.domain.clock import Clock, isoformat_z
from gravity_sms.domain.connection_store import (
    ConnectionStore,
    InboundSink,
    NumberInfo,
    StoredExtension,
    StoredSubscription,
)
from gravity_sms.domain.errors import (
    AuthExpired,
    ConnectionRevoked,
    ProviderError,
    RefreshFailed,
    TooManyRequests,
    ValidationFailed,
)
from gravity_sms.domain.ports import LockManager, RateLimiter, SecretBox
from gravity_sms.domain.provider import RcMessage, RingCentralApi

T = TypeVar("T")
log = logging.getLogger("gravity.connections")

NOT_CONNECTED = "RingCentral not connected for this tenant"
CONNECT_TOKEN_TTL = timedelta(minutes=5)
INVITE_TOKEN_TTL = timedelta(minutes=30)
STATE_TTL = timedelta(minutes=10)
CONNECT_TOKENS_PER_HOUR = 100
# call(): refresh when the access token has less than this left (clock skew, slow calls).
REFRESH_MARGIN = timedelta(seconds=60)
# The scheduler refreshes ahead of time, and keeps a quiet connection's refresh token alive.
REFRESH_AHEAD = timedelta(minutes=5)
REFRESH_TOKEN_AHEAD = timedelta(days=1)
# After a refresh failed (RingCentral down), calls needing one fail at once for a while instead
# of asking again: 2 s, 4 s, 8 s … at most 2 minutes (per extension, per node).
REFRESH_BACKOFF_FIRST = 2.0
REFRESH_BACKOFF_MAX = 120.0
SUBSCRIPTION_TTL = 604800  # 7 days (api.md §9)
# Renew with at least a day to spare (api.md §9): from three days left, so retries have room.
RENEW_WITHIN = timedelta(days=3)
NOTE_EVENT_INTERVAL = 10.0
BACKFILL_OVERLAP = timedelta(minutes=5)
BACKFILL_MAX_LOOKBACK = timedelta(days=7)
BACKFILL_PAGE = 100
BACKFILL_MAX_PAGES = 50
WEBHOOK_PATH = "/v1/webhooks/ringcentral"
CALLBACK_PATH = "/v1/rc/callback"
INSTANT_SMS_FILTER = "/restapi/v1.0/account/~/extension/~/message-store/instant?type=SMS"
# ringcentral.md §2 "Expiry reminder": a day before expiry, hourly.
EXPIRY_REMINDER_FILTER = "/restapi/v1.0/subscription/~?threshold=86400&interval=3600"
EVENT_FILTERS = (INSTANT_SMS_FILTER, EXPIRY_REMINDER_FILTER)


def not_connected() -> ProviderError:
    return ProviderError(NOT_CONNECTED, code="not-connected", retryable=False)


def pkce_pair() -> tuple[str, str]:
    """(code_verifier, S256 code_challenge) per RFC 7636 §4.1-4.2."""
    verifier = secrets.token_urlsafe(64)
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _is_missing(exc: ProviderError) -> bool:
    return exc.code == "CMN-102" or exc.status == 404


def _refresh_failed(exc: ProviderError, *, retry_after: float) -> RefreshFailed:
    return RefreshFailed(
        exc.message, code=exc.code, status=exc.status, retryable=exc.retryable, retry_after=retry_after
    )


class ConnectionService:
    def __init__(
        self,
        store: ConnectionStore,
        rc: RingCentralApi,
        locks: LockManager,
        box: SecretBox,
        clock: Clock,
        limiter: RateLimiter,
        *,
        public_url: str,
    ) -> None:
        self.store = store
        self.rc = rc
        self.locks = locks
        self.box = box
        self.clock = clock
        self.limiter = limiter
        self.public_url = public_url.rstrip("/")
        self._tokens: dict[tuple[str, str], tuple[str, datetime]] = {}
        self._noted: dict[tuple[str, str], float] = {}
        # extension -> (failures in a row, no new attempt before, the last failure)
        self._refresh_failures: dict[tuple[str, str], tuple[int, datetime, ProviderError]] = {}
        # When a call to RingCentral last succeeded on this node, for any extension: after an
        # outage the scheduler takes it as the sign that RingCentral is back.
        self.last_success: datetime | None = None

    @property
    def redirect_uri(self) -> str:
        return self.public_url + CALLBACK_PATH

    @property
    def webhook_address(self) -> str:
        return self.public_url + WEBHOOK_PATH

    # --- calling RingCentral for an extension ---------------------------------------------------
    async def call(self, tenant_id: str, extension_id: str, fn: Callable[[str], Awaitable[T]]) -> T:
        """Run `fn(access_token)`; on an expired token refresh once and repeat once."""
        token = await self._access_token(tenant_id, extension_id)
        try:
            result = await fn(token)
        except AuthExpired:
            token = await self._refresh(tenant_id, extension_id, stale=token)
            result = await fn(token)
        self.last_success = self.clock.now()
        return result

    async def _access_token(self, tenant_id: str, extension_id: str) -> str:
        key = (tenant_id, extension_id)
        now = self.clock.now()
        cached = self._tokens.get(key)
        if cached is not None and cached[1] - now > REFRESH_MARGIN:
            return cached[0]
        ext = await self.store.get_extension(tenant_id, extension_id)
        if ext is None or not ext.connected or ext.access_token_enc is None:
            self._tokens.pop(key, None)
            raise not_connected()
        token = self.box.decrypt(ext.access_token_enc)
        if ext.access_expires_at is not None and ext.access_expires_at - now > REFRESH_MARGIN:
            self._tokens[key] = (token, ext.access_expires_at)
            return token
        return await self._refresh(tenant_id, extension_id, stale=token)

    async def _refresh(self, tenant_id: str, extension_id: str, *, stale: str | None) -> str:
        """Single-flight refresh: the cluster lock, then a re-read, because another holder may
        already have refreshed (its new token differs from `stale`): then no second refresh."""
        key = (tenant_id, extension_id)
        async with self.locks.lock(f"rc-refresh:{tenant_id}:{extension_id}", ttl=30.0) as held:
            if not held:
                # Refresh tokens are single-use: refreshing without the cluster lock could race
                # another node and kill the connection. Give up this time; the caller retries.
                raise ProviderError("Token refresh busy on another node", code="refresh-busy", retryable=True)
            ext = await self.store.get_extension(tenant_id, extension_id)
            if ext is None or not ext.connected or ext.access_token_enc is None or ext.refresh_token_enc is None:
                self._tokens.pop(key, None)
                raise not_connected()
            now = self.clock.now()
            current = self.box.decrypt(ext.access_token_enc)
            fresh = ext.access_expires_at is not None and ext.access_expires_at - now > REFRESH_MARGIN
            if current != stale and fresh:
                assert ext.access_expires_at is not None
                self._tokens[key] = (current, ext.access_expires_at)
                return current
            failed = self._refresh_failures.get(key)
            if failed is not None and now < failed[1]:
                raise _refresh_failed(failed[2], retry_after=(failed[1] - now).total_seconds())
            try:
                tokens = await self.rc.refresh(self.box.decrypt(ext.refresh_token_enc))
            except ConnectionRevoked as exc:
                self._tokens.pop(key, None)
                await self.store.mark_disconnected(tenant_id, extension_id, f"Refresh token rejected: {exc}", now)
                log.warning(
                    "rc.disconnected",
                    extra={"fields": {"tenant_id": tenant_id, "extension_id": extension_id, "code": exc.code}},
                )
                raise not_connected() from None
            except ProviderError as exc:
                count = failed[0] + 1 if failed is not None else 1
                backoff = min(REFRESH_BACKOFF_FIRST * 2 ** (count - 1), REFRESH_BACKOFF_MAX)
                backoff = max(backoff, exc.retry_after or 0.0)
                self._refresh_failures[key] = (count, now + timedelta(seconds=backoff), exc)
                await self.store.set_error(tenant_id, extension_id, f"Token refresh failed: {exc}", now)
                raise _refresh_failed(exc, retry_after=backoff) from exc
            self._refresh_failures.pop(key, None)
            await self.store.save_tokens(
                tenant_id,
                extension_id,
                access_token_enc=self.box.encrypt(tokens.access_token),
                refresh_token_enc=self.box.encrypt(tokens.refresh_token),
                access_expires_at=tokens.expires_at,
                refresh_expires_at=tokens.refresh_expires_at,
                now=self.clock.now(),
            )
            self._tokens[key] = (tokens.access_token, tokens.expires_at)
            log.info("rc.token_refreshed", extra={"fields": {"tenant_id": tenant_id, "extension_id": extension_id}})
            return tokens.access_token

    async def refresh_if_due(self, tenant_id: str, extension_id: str) -> bool:
        """The scheduler's ahead-of-time refresh; True when a refresh was made."""
        ext = await self.store.get_extension(tenant_id, extension_id)
        if ext is None or not ext.connected or ext.access_token_enc is None:
            return False
        now = self.clock.now()
        access_due = ext.access_expires_at is None or ext.access_expires_at - now <= REFRESH_AHEAD
        refresh_due = ext.refresh_expires_at is not None and ext.refresh_expires_at - now <= REFRESH_TOKEN_AHEAD
        if not (access_due or refresh_due):
            return False
        # A refresh token near its end is refreshed even though the access token is fine; a
        # holder that already refreshed (the stored token differs from ours) spares the call.
        await self._refresh(tenant_id, extension_id, stale=self.box.decrypt(ext.access_token_enc))
        return True

    # --- numbers and extensions -----------------------------------------------------------------
    async def find_number(self, tenant_id: str, phone_number: str) -> NumberInfo | None:
        return await self.store.find_number(tenant_id, phone_number)

    async def connected_extensions(self, tenant_id: str) -> list[str]:
        return [e.extension_id for e in await self.store.tenant_extensions(tenant_id) if e.connected]

    async def phone_numbers(self, tenant_id: str) -> list[NumberInfo]:
        return await self.store.tenant_phone_numbers(tenant_id)

    async def note_event(self, tenant_id: str, extension_id: str, at: datetime) -> None:
        """Called per accepted webhook event; writes at most once per extension per ~10 s."""
        key = (tenant_id, extension_id)
        mono = self.clock.monotonic()
        last = self._noted.get(key)
        if last is not None and mono - last < NOTE_EVENT_INTERVAL:
            return
        self._noted[key] = mono
        await self.store.note_event(tenant_id, extension_id, at)

    async def status(self, tenant_id: str) -> dict[str, Any]:
        exts = await self.store.tenant_extensions(tenant_id)
        if not exts:
            return {"connected": False}
        numbers = await self.store.tenant_phone_numbers(tenant_id)
        connected = [e for e in exts if e.connected]
        items = []
        for ext in exts:
            subs = await self.store.extension_subscriptions(tenant_id, ext.extension_id)
            sub = max(subs, key=lambda s: s.expires_at or ext.created_at, default=None)
            items.append(
                {
                    "extensionId": ext.extension_id,
                    "phoneNumbers": [n.phone_number for n in numbers if n.extension_id == ext.extension_id],
                    "subscriptionExpiresAt": _ts(sub.expires_at) if sub else None,
                    "subscriptionStatus": sub.status if sub else None,
                    "status": ext.status,
                    "error": ext.error,
                }
            )
        body: dict[str, Any] = {"connected": bool(connected)}
        if connected:
            expiries = [e.access_expires_at for e in connected if e.access_expires_at is not None]
            body["expiresAt"] = _ts(min(expiries)) if expiries else None
            body["rcAccountId"] = connected[0].account_id
        body["extensions"] = items
        return body

    # --- the connect flow (api.md §9) -----------------------------------------------------------
    async def issue_connect_token(self, tenant_id: str, kind: str) -> tuple[str, int]:
        """A single-use link token: `connect` (5 min) or `invite` (30 min); 100 per tenant per hour."""
        allowed, _, reset = await self.limiter.hit(f"rc-connect-tokens:{tenant_id}", CONNECT_TOKENS_PER_HOUR, 3600.0)
        if not allowed:
            raise TooManyRequests(retry_after=int(reset) + 1)
        ttl = INVITE_TOKEN_TTL if kind == "invite" else CONNECT_TOKEN_TTL
        token = secrets.token_urlsafe(32)
        now = self.clock.now()
        await self.store.insert_connect_token(self.box.hash(token), tenant_id, kind, now + ttl, now)
        return token, int(ttl.total_seconds())

    async def connect_token_valid(self, token: str) -> bool:
        if not token:
            return False
        return await self.store.connect_token_tenant(self.box.hash(token), self.clock.now()) is not None

    async def begin(self, token: str) -> str:
        """Consume the link token and answer RingCentral's authorize URL (PKCE S256 + state)."""
        tenant_id = await self.store.consume_connect_token(self.box.hash(token), self.clock.now()) if token else None
        if tenant_id is None:
            raise ValidationFailed("This connect link is invalid, used or expired")
        verifier, challenge = pkce_pair()
        state = secrets.token_urlsafe(32)
        now = self.clock.now()
        await self.store.insert_oauth_state(
            self.box.hash(state), tenant_id, self.box.encrypt(verifier), now + STATE_TTL, now
        )
        return self.rc.authorize_url(redirect_uri=self.redirect_uri, state=state, code_challenge=challenge)

    async def complete(self, code: str | None, state: str | None) -> StoredExtension:
        """The OAuth callback: exchange the code, read the extension and numbers, store, subscribe.

        Nothing is stored unless RingCentral accepted the code and answered the reads.
        """
        if not code or not state:
            raise ValidationFailed("Missing code or state parameter")
        taken = await self.store.take_oauth_state(self.box.hash(state), self.clock.now())
        if taken is None:
            raise ValidationFailed("Invalid or expired state")
        tenant_id, verifier_enc = taken
        try:
            tokens = await self.rc.exchange_code(
                code=code, redirect_uri=self.redirect_uri, code_verifier=self.box.decrypt(verifier_enc)
            )
        except ProviderError as exc:
            log.warning("rc.connect_refused", extra={"fields": {"tenant_id": tenant_id, "code": exc.code}})
            raise ValidationFailed("RingCentral authorization failed") from None
        try:
            info = await self.rc.get_extension(tokens.access_token)
            numbers = await self.rc.list_phone_numbers(tokens.access_token)
        except ProviderError as exc:
            log.warning("rc.connect_read_failed", extra={"fields": {"tenant_id": tenant_id, "code": exc.code}})
            await self._quiet_revoke(tokens.refresh_token)
            raise ValidationFailed("RingCentral authorization failed") from None
        now = self.clock.now()
        previous = await self.store.get_extension(tenant_id, info.id)
        ext = StoredExtension(
            tenant_id=tenant_id,
            extension_id=info.id,
            account_id=info.account_id,
            status="connected",
            error=None,
            access_token_enc=self.box.encrypt(tokens.access_token),
            refresh_token_enc=self.box.encrypt(tokens.refresh_token),
            access_expires_at=tokens.expires_at,
            refresh_expires_at=tokens.refresh_expires_at,
            last_event_at=previous.last_event_at if previous else None,
            created_at=previous.created_at if previous else now,
            updated_at=now,
        )
        cached = [
            NumberInfo(n.phone_number, info.id, tuple(n.features), n.sms_enabled) for n in numbers if n.phone_number
        ]
        await self.store.save_connection(ext, cached)
        self._tokens[(tenant_id, info.id)] = (tokens.access_token, tokens.expires_at)
        if previous is not None and previous.refresh_token_enc is not None:
            # The older session of the same user and app: end it (about 5 live sessions allowed).
            await self._quiet_revoke(self.box.decrypt(previous.refresh_token_enc))
        log.info(
            "rc.connected", extra={"fields": {"tenant_id": tenant_id, "extension_id": info.id, "numbers": len(cached)}}
        )
        try:
            await self.replace_subscription(tenant_id, info.id)
        except ProviderError as exc:
            # The connection stands; the scheduler re-creates the missing subscription.
            await self.store.set_error(tenant_id, info.id, f"Subscription not created: {exc}", self.clock.now())
        return replace(ext, access_token_enc=None, refresh_token_enc=None)

    async def disconnect(self, tenant_id: str) -> None:
        """Delete subscriptions at RingCentral, revoke, forget everything. Idempotent; RingCentral
        errors are ignored (the local state goes regardless)."""
        for ext in await self.store.tenant_extensions(tenant_id):
            subs = await self.store.extension_subscriptions(tenant_id, ext.extension_id)
            if ext.connected:
                for sub in subs:
                    try:
                        await self.call(tenant_id, ext.extension_id, self._deleter(sub.id))
                    except ProviderError:
                        pass
                fresh = await self.store.get_extension(tenant_id, ext.extension_id)
                if fresh is not None and fresh.refresh_token_enc is not None:
                    await self._quiet_revoke(self.box.decrypt(fresh.refresh_token_enc))
            await self.store.delete_connection(tenant_id, ext.extension_id)
            self._tokens.pop((tenant_id, ext.extension_id), None)
            log.info(
                "rc.disconnected_by_tenant",
                extra={"fields": {"tenant_id": tenant_id, "extension_id": ext.extension_id}},
            )

    def _inbound_page(self, since: datetime, page: int) -> Callable[[str], Awaitable[list[RcMessage]]]:
        return lambda token: self.rc.list_messages(
            token, direction="Inbound", date_from=since, per_page=BACKFILL_PAGE, page=page
        )

    def _deleter(self, subscription_id: str) -> Callable[[str], Awaitable[None]]:
        return lambda token: self.rc.delete_subscription(token, subscription_id)

    async def _quiet_revoke(self, token: str) -> None:
        try:
            await self.rc.revoke(token)
        except ProviderError:
            pass  # ringcentral.md §1: clients ignore revoke errors.

    # --- subscriptions (ringcentral.md §2) -------------------------------------------------------
    async def replace_subscription(self, tenant_id: str, extension_id: str) -> StoredSubscription:
        """Create a new subscription (fresh verification token), then drop the old ones."""
        verification = secrets.token_urlsafe(32)
        created = await self.call(
            tenant_id,
            extension_id,
            lambda t: self.rc.create_subscription(
                t,
                address=self.webhook_address,
                verification_token=verification,
                event_filters=list(EVENT_FILTERS),
                expires_in=SUBSCRIPTION_TTL,
            ),
        )
        old = await self.store.extension_subscriptions(tenant_id, extension_id)
        sub = StoredSubscription(
            id=created.id,
            tenant_id=tenant_id,
            extension_id=extension_id,
            verification_token_hash=self.box.hash(verification),
            status=created.status,
            expires_at=created.expires_at,
        )
        await self.store.save_subscription(sub, self.clock.now())
        for stale in old:
            if stale.id == sub.id:
                continue
            await self.store.delete_subscription(stale.id)
            try:
                await self.call(tenant_id, extension_id, self._deleter(stale.id))
            except ProviderError:
                pass  # already gone (404) or RingCentral down: it expires on its own.
        await self.store.set_error(tenant_id, extension_id, None, self.clock.now())
        log.info(
            "rc.subscription_created",
            extra={"fields": {"tenant_id": tenant_id, "extension_id": extension_id, "subscription_id": sub.id}},
        )
        return sub

    async def maintain_subscription(self, tenant_id: str, extension_id: str, *, verify: bool) -> str:
        """Keep one live subscription: create, renew (from 3 days left) or re-create when RingCentral
        reports it missing or not Active. Answers what was done: created, recreated, renewed, ok."""
        async with self.locks.lock(f"rc-subscription:{tenant_id}:{extension_id}", ttl=60.0) as held:
            if not held:
                return "busy"
            subs = await self.store.extension_subscriptions(tenant_id, extension_id)
            if not subs:
                await self.replace_subscription(tenant_id, extension_id)
                return "created"
            sub = max(subs, key=lambda s: (s.expires_at is not None, s.expires_at or self.clock.now()))
            if verify:
                try:
                    remote = await self.call(tenant_id, extension_id, lambda t: self.rc.get_subscription(t, sub.id))
                except ProviderError as exc:
                    if not _is_missing(exc):
                        raise
                    log.warning("rc.subscription_missing", extra={"fields": {"subscription_id": sub.id}})
                    await self.replace_subscription(tenant_id, extension_id)
                    return "recreated"
                if remote.status != "Active":
                    log.warning(
                        "rc.subscription_blacklisted",
                        extra={"fields": {"subscription_id": sub.id, "status": remote.status}},
                    )
                    await self.store.update_subscription(sub.id, remote.status, remote.expires_at, self.clock.now())
                    await self.replace_subscription(tenant_id, extension_id)
                    return "recreated"
                if remote.expires_at != sub.expires_at:
                    await self.store.update_subscription(sub.id, remote.status, remote.expires_at, self.clock.now())
                    sub = replace(sub, expires_at=remote.expires_at)
            if sub.expires_at is None or sub.expires_at - self.clock.now() <= RENEW_WITHIN:
                return await self._renew(tenant_id, extension_id, sub.id)
            return "ok"

    async def _renew(self, tenant_id: str, extension_id: str, subscription_id: str) -> str:
        try:
            renewed = await self.call(tenant_id, extension_id, lambda t: self.rc.renew_subscription(t, subscription_id))
        except ProviderError as exc:
            if not _is_missing(exc):
                raise
            await self.replace_subscription(tenant_id, extension_id)
            return "recreated"
        if renewed.status != "Active":
            await self.replace_subscription(tenant_id, extension_id)
            return "recreated"
        await self.store.update_subscription(subscription_id, renewed.status, renewed.expires_at, self.clock.now())
        log.info("rc.subscription_renewed", extra={"fields": {"subscription_id": subscription_id}})
        return "renewed"

    async def handle_expiry_reminder(self, subscription_id: str) -> None:
        """RingCentral's expiry-reminder event (ringcentral.md §2): renew now. Never raises."""
        sub = await self.store.get_subscription(subscription_id)
        if sub is None:
            return
        try:
            async with self.locks.lock(f"rc-subscription:{sub.tenant_id}:{sub.extension_id}", ttl=60.0) as held:
                if held:
                    await self._renew(sub.tenant_id, sub.extension_id, subscription_id)
        except ProviderError as exc:
            log.warning(
                "rc.reminder_renew_failed", extra={"fields": {"subscription_id": subscription_id, "code": exc.code}}
            )

    # --- backfill --------------------------------------------------------------------------------
    async def backfill(self, tenant_id: str, extension_id: str, sink: InboundSink) -> int:
        """Hand every inbound SMS since the last event seen (or the connection) to the inbound
        pipeline, which deduplicates by RingCentral id. Answers how many were new."""
        ext = await self.store.get_extension(tenant_id, extension_id)
        if ext is None or not ext.connected:
            return 0
        started = self.clock.now()
        since = max((ext.last_event_at or ext.created_at) - BACKFILL_OVERLAP, started - BACKFILL_MAX_LOOKBACK)
        created = 0
        for page in range(1, BACKFILL_MAX_PAGES + 1):
            records = await self.call(tenant_id, extension_id, self._inbound_page(since, page))
            for record in records:
                if record.direction != "Inbound" or record.type != "SMS":
                    continue
                _, new = await sink.accept(tenant_id, extension_id, record)
                created += int(new)
            if len(records) < BACKFILL_PAGE:
                break
        await self.store.note_event(tenant_id, extension_id, started)
        log.info(
            "rc.backfilled",
            extra={"fields": {"tenant_id": tenant_id, "extension_id": extension_id, "new": created}},
        )
        return created


def _ts(value: datetime | None) -> str | None:
    return isoformat_z(value) if value is not None else None
