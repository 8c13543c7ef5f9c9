"""API-key authentication, brute-force blocking and per-key rate limits (api.md §1).

The key lookup costs no database read on the hot path: hashes resolve through the `KeyCache`
port (in-process, or Redis in a cluster), which rotate/delete invalidate at once. `lastUsedAt`
is written at most once a minute per key, off the request path.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import HTTPConnection, Request
from starlette.responses import Response
from starlette.types import Scope

from gravity_sms.domain.apps import AppStore
from gravity_sms.domain.clock import Clock
from gravity_sms.domain.errors import Forbidden, TooManyRequests, Unauthenticated
from gravity_sms.domain.ids import API_KEY_RE
from gravity_sms.domain.models import AuthContext
from gravity_sms.domain.ports import KeyCache, RateLimiter, SecretBox
from gravity_sms.telemetry import get_logger

FAIL_LIMIT = 10
FAIL_WINDOW = 300.0
BLOCK_SECONDS = 900.0
RATE_WINDOW = 60.0
LAST_USED_INTERVAL = 60.0

log = get_logger("gravity.auth")

Handler = Callable[[Request, AuthContext], Awaitable[Response]]


def client_ip(conn: HTTPConnection, trust_proxy: bool) -> str:
    """The caller's address. Behind a trusted proxy, the last `X-Forwarded-For` hop: the address
    the proxy itself saw (earlier entries are whatever the caller wrote, so they prove nothing)."""
    forwarded = conn.headers.get("x-forwarded-for") if trust_proxy else None
    return pick_ip(forwarded, conn.client.host if conn.client else None)


def pick_ip(forwarded: str | None, peer: str | None) -> str:
    if forwarded:
        last = forwarded.rsplit(",", 1)[-1].strip()
        if last:
            return last
    return peer or "unknown"


def extract_key(conn: HTTPConnection) -> str | None:
    """The presented key, `""` when a header is present but not `Bearer <token>`, None when absent."""
    return pick_key(conn.headers.get("authorization"), conn.headers.get("x-api-key"))


def pick_key(authorization: str | None, api_key: str | None) -> str | None:
    if authorization is not None:
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return ""
        return token
    if api_key is not None:
        return api_key.strip()
    return None


@dataclass(frozen=True, slots=True)
class Presented:
    """What a request presents for authentication, read straight off the ASGI scope (the hot
    routes never build a Starlette `Request`)."""

    ip: str
    key: str | None

    @classmethod
    def from_scope(cls, scope: Scope, trust_proxy: bool) -> Presented:
        authorization = api_key = forwarded = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value.decode("latin-1")
            elif name == b"x-api-key":
                api_key = value.decode("latin-1")
            elif name == b"x-forwarded-for" and trust_proxy:
                forwarded = value.decode("latin-1")
        client = scope.get("client")
        return cls(pick_ip(forwarded, client[0] if client else None), pick_key(authorization, api_key))


class Authenticator:
    def __init__(
        self,
        *,
        apps: AppStore,
        key_cache: KeyCache,
        limiter: RateLimiter,
        box: SecretBox,
        clock: Clock,
        trust_proxy: bool,
        rate_limit_app: int,
        rate_limit_admin: int,
    ) -> None:
        self.apps = apps
        self.key_cache = key_cache
        self.limiter = limiter
        self.box = box
        self.clock = clock
        self.trust_proxy = trust_proxy
        self.rate_limit_app = rate_limit_app
        self.rate_limit_admin = rate_limit_admin
        self._last_used: dict[str, float] = {}
        self._background: set[asyncio.Task[None]] = set()

    async def check_blocked(self, ip: str) -> None:
        count, reset = await self.limiter.peek(f"authblock:{ip}", BLOCK_SECONDS)
        if count:
            raise TooManyRequests(retry_after=math.ceil(reset) or 1)

    async def record_failure(self, ip: str) -> None:
        allowed, _, _ = await self.limiter.hit(f"authfail:{ip}", FAIL_LIMIT - 1, FAIL_WINDOW)
        if not allowed:
            # The 10th failure inside the window: block the address for 15 minutes.
            await self.limiter.hit(f"authblock:{ip}", 1, BLOCK_SECONDS)
            await self.limiter.reset(f"authfail:{ip}")
            log.warning("auth.ip_blocked", ip=ip)

    async def resolve(self, key: str) -> AuthContext | None:
        """Key → context through the cache; None when unknown (a malformed key costs no lookup)."""
        if API_KEY_RE.match(key) is None:
            return None
        key_hash = self.box.hash(key)
        ctx = await self.key_cache.get(key_hash)
        if ctx is None:
            ctx = await self.apps.auth_lookup(key_hash)
            if ctx is not None:
                await self.key_cache.put(key_hash, ctx)
        return ctx

    async def identify(self, conn: HTTPConnection) -> AuthContext:
        """Authenticate without rate limiting (shared with the WebSocket path)."""
        return await self._identify(client_ip(conn, self.trust_proxy), extract_key(conn))

    async def _identify(self, ip: str, key: str | None) -> AuthContext:
        await self.check_blocked(ip)
        if not key:
            raise Unauthenticated("Missing or invalid API key")
        ctx = await self.resolve(key)
        if ctx is None:
            await self.record_failure(ip)
            raise Unauthenticated("Invalid API key")
        return ctx

    async def authenticate(self, request: Request, *, admin: bool = False) -> AuthContext:
        rate_headers: dict[str, str] = {}
        request.state.rate_headers = rate_headers
        return await self.admit(client_ip(request, self.trust_proxy), extract_key(request), rate_headers, admin=admin)

    async def admit(
        self, ip: str, key: str | None, rate_headers: dict[str, str], *, admin: bool = False
    ) -> AuthContext:
        """Identify, check the tenant, count the request against the key's limit. `rate_headers`
        receives the X-RateLimit-* headers as soon as they are known, so the error answers after
        that point carry them too."""
        ctx = await self._identify(ip, key)
        if ctx.tenant_status != "active":
            raise Forbidden("Tenant suspended or inactive")
        limit = self.rate_limit_admin if ctx.is_admin else self.rate_limit_app
        allowed, remaining, reset = await self.limiter.hit(f"ratelimit:{ctx.key_hash}", limit, RATE_WINDOW)
        rate_headers["X-RateLimit-Limit"] = str(limit)
        rate_headers["X-RateLimit-Remaining"] = str(remaining)
        rate_headers["X-RateLimit-Reset"] = str(math.ceil(reset))
        if not allowed:
            raise TooManyRequests(retry_after=math.ceil(reset) or 1)
        if admin and not ctx.is_admin:
            raise Forbidden("Admin API key required")
        self._note_used(ctx)
        return ctx

    def _note_used(self, ctx: AuthContext) -> None:
        now = self.clock.monotonic()
        last = self._last_used.get(ctx.key_hash)
        if last is not None and now - last < LAST_USED_INTERVAL:
            return
        self._last_used[ctx.key_hash] = now
        task = asyncio.create_task(self._touch(ctx.app_id))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _touch(self, app_id: str) -> None:
        try:
            await self.apps.touch_last_used(app_id, self.clock.now())
        except Exception:
            log.exception("auth.last_used_failed", app_id=app_id)

    async def drain(self) -> None:
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)


def authenticated(handler: Handler, *, admin: bool = False) -> Callable[[Request], Awaitable[Response]]:
    """Wrap a `(request, ctx)` handler as a Starlette endpoint that requires an API key."""

    async def endpoint(request: Request) -> Response:
        auth: Authenticator = request.app.state.auth
        ctx = await auth.authenticate(request, admin=admin)
        response = await handler(request, ctx)
        rate_headers: dict[str, Any] = request.state.rate_headers
        response.headers.update(rate_headers)
        return response

    endpoint.__name__ = getattr(handler, "__name__", "endpoint")
    return endpoint
