"""One HTTP POST to a webhook or trigger URL under the delivery rules of api.md §6.2.

Owns the exchange only: the 5 s budget for the whole of it (connect, send, read), reading at
most 2 KB of the reply however large it is, never following a redirect, and — when private
addresses are blocked — the SSRF check on the address actually connected to.

DNS rebinding: the host is resolved here, every address is checked (`resolve_public`), and the
request is sent to the checked IP itself, with the original `Host` header and, for https, the
original name as SNI and certificate name (httpcore's `sni_hostname` extension). A second
lookup that could answer differently never happens.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import httpx

from gravity_sms.delivery.origin_pools import OriginPools, TransportFactory, http_pool_factory
from gravity_sms.domain.urls import Resolver, UrlRejected, resolve_public, system_resolver

BODY_PREFIX = 2048


@dataclass(frozen=True, slots=True)
class Attempt:
    status_code: int | None
    error: str | None
    duration_ms: int
    body: str = ""

    @property
    def success(self) -> bool:
        return self.error is None and self.status_code is not None and 200 <= self.status_code < 300


@dataclass(frozen=True, slots=True)
class PinnedRequest:
    url: str
    host_header: str | None = None
    sni_hostname: str | None = None


def pin(url: str, address: str) -> PinnedRequest:
    """The request for `url` sent to `address` (an IP checked by `resolve_public`)."""
    parts = urlsplit(url)
    host = f"[{address}]" if ":" in address else address
    netloc = host if parts.port is None else f"{host}:{parts.port}"
    original = parts.netloc.rsplit("@", 1)[-1]
    sni = parts.hostname if parts.scheme == "https" else None
    return PinnedRequest(urlunsplit(parts._replace(netloc=netloc)), original, sni)


class WebhookClient:
    def __init__(
        self,
        *,
        timeout: float,
        block_private: bool,
        user_agent: str,
        resolver: Resolver = system_resolver,
        transport: httpx.AsyncBaseTransport | None = None,
        per_origin: int = 100,
        max_origins: int = 256,
        pool_factory: TransportFactory | None = None,
    ) -> None:
        self.timeout = timeout
        self.block_private = block_private
        self.user_agent = user_agent
        self.resolver = resolver
        # One bounded pool per origin (see origin_pools): a shared pool cap would let one
        # hanging endpoint starve every other host, and one uncapped pool is rescanned on every
        # request. `per_origin` matches the dispatcher's per-endpoint in-flight bound.
        # `transport` (tests) replaces the pools altogether.
        self.pools = OriginPools(pool_factory or http_pool_factory(per_origin), max_origins=max_origins)
        self._client = httpx.AsyncClient(
            transport=transport or self.pools,
            follow_redirects=False,
            trust_env=False,
            timeout=httpx.Timeout(timeout),
        )

    async def _pinned(self, url: str) -> PinnedRequest:
        if not self.block_private:
            return PinnedRequest(url)
        addresses = await resolve_public(url, self.resolver)
        return pin(url, addresses[0])

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> Attempt:
        started = time.perf_counter()
        status: int | None = None
        error: str | None = None
        prefix = b""
        try:
            async with asyncio.timeout(self.timeout):
                target = await self._pinned(url)
                send_headers = {"Content-Type": "application/json", "User-Agent": self.user_agent, **headers}
                if target.host_header:
                    send_headers["Host"] = target.host_header
                extensions = {"sni_hostname": target.sni_hostname} if target.sni_hostname else None
                request = self._client.build_request(
                    "POST", target.url, content=body, headers=send_headers, extensions=extensions
                )
                response = await self._client.send(request, stream=True)
                try:
                    status = response.status_code
                    async for chunk in response.aiter_bytes():
                        prefix += chunk
                        if len(prefix) >= BODY_PREFIX:
                            break
                finally:
                    await response.aclose()
        except UrlRejected as exc:
            error = (
                "Webhook URL host could not be resolved"
                if exc.reason == "unresolvable"
                else "Webhook URL resolves to a private or internal address"
            )
        except (TimeoutError, httpx.TimeoutException):
            error = f"Timed out after {self.timeout:g}s"
        except (httpx.HTTPError, OSError) as exc:
            error = f"Connection failed: {type(exc).__name__}"
        if error is None and status is not None and not 200 <= status < 300:
            error = f"HTTP {status}"
        duration_ms = int((time.perf_counter() - started) * 1000)
        return Attempt(status, error, duration_ms, prefix[:BODY_PREFIX].decode("utf-8", errors="replace"))

    async def close(self) -> None:
        await self._client.aclose()
        await self.pools.aclose()
