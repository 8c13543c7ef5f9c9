"""One HTTP POST to a webhook or trigger URL under the delivery rules of api.md §6.2.

Owns the exchange only: the 5 s budget for the whole of it (connect, send, read), reading at
most 2 KB of the reply however large it is, never following a redirect, and — when private
addresses are blocked — the SSRF check on the address actually connected to.

The client is aiohttp's, not httpx's (which the RingCentral client uses): a delivery is the
gateway's hottest outbound call (B3: three per inbound event), and measured on the same machine
and receiver an aiohttp POST costs ~90 µs of CPU against ~1.4 ms for httpx with 100 requests in
flight (httpcore rescans its pool on every request). See docs/architecture.md, "Hot-path work".

DNS rebinding: names are resolved by `CheckedResolver`, which aiohttp's connector calls for
every new connection (its DNS cache is off): every address is checked (`resolve_public`) and
the connector connects only to those checked addresses, so a second lookup that could answer
differently never happens. The URL keeps its name, so `Host` and the TLS SNI/certificate name
are the original host. IP-literal hosts never reach a resolver; they are checked before the
request. Keep-alive connections are reused per origin: each was opened to a checked address.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from gravity_sms.domain.urls import Resolver, UrlRejected, resolve_public, system_resolver

BODY_PREFIX = 2048
KEEPALIVE_SECONDS = 4.0


@dataclass(frozen=True, slots=True)
class Attempt:
    status_code: int | None
    error: str | None
    duration_ms: int
    body: str = ""
    timed_out: bool = False  # the exchange ran past the timeout (the endpoint may hang)

    @property
    def success(self) -> bool:
        return self.error is None and self.status_code is not None and 200 <= self.status_code < 300


class CheckedResolver(AbstractResolver):
    """aiohttp's resolver: answers only addresses that passed the SSRF check (when it is on)."""

    def __init__(self, resolver: Resolver, *, block_private: bool) -> None:
        self._resolver = resolver
        self._block_private = block_private

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        name = host.rstrip(".")
        if self._block_private:
            addresses = await resolve_public(f"http://{name}:{port}/", self._resolver)
        else:
            try:
                addresses = await self._resolver(name, port)
            except OSError as exc:
                raise UrlRejected("unresolvable") from exc
        if not addresses:
            raise UrlRejected("unresolvable")
        return [
            ResolveResult(
                hostname=host,
                host=address,
                port=port,
                family=socket.AF_INET6 if ":" in address else socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
            for address in addresses
        ]

    async def close(self) -> None:
        return None


def _is_ip_literal(url: str) -> bool:
    try:
        ipaddress.ip_address((urlsplit(url).hostname or "").split("%", 1)[0])
    except ValueError:
        return False
    return True


class WebhookClient:
    def __init__(
        self,
        *,
        timeout: float,
        block_private: bool,
        user_agent: str,
        resolver: Resolver = system_resolver,
        keepalive_seconds: float = KEEPALIVE_SECONDS,
    ) -> None:
        self.timeout = timeout
        self.keepalive_seconds = keepalive_seconds
        self.block_private = block_private
        self.user_agent = user_agent
        self.resolver = resolver
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        # Made on first use, inside the running loop. No connection limits here: the dispatcher
        # bounds deliveries in flight, globally and per endpoint, before they reach the client.
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=0,
                limit_per_host=0,
                # Under the idle timeout of common receivers (uvicorn and Node.js close after 5 s),
                # so a delivery is not sent on a connection the receiver is closing.
                keepalive_timeout=self.keepalive_seconds,
                use_dns_cache=False,
                resolver=CheckedResolver(self.resolver, block_private=self.block_private),
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                trust_env=False,
                cookie_jar=aiohttp.DummyCookieJar(),
                auto_decompress=False,
                skip_auto_headers=("Accept-Encoding",),
            )
        return self._session

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> Attempt:
        started = time.perf_counter()
        status: int | None = None
        error: str | None = None
        timed_out = False
        prefix = b""
        try:
            async with asyncio.timeout(self.timeout):
                if self.block_private and _is_ip_literal(url):
                    await resolve_public(url, self.resolver)  # no DNS: a check of the literal
                send_headers = {"Content-Type": "application/json", "User-Agent": self.user_agent, **headers}
                async with self._client().post(url, data=body, headers=send_headers, allow_redirects=False) as response:
                    status = response.status
                    while len(prefix) < BODY_PREFIX:
                        chunk = await response.content.read(BODY_PREFIX - len(prefix))
                        if not chunk:
                            break
                        prefix += chunk
        except UrlRejected as exc:
            error = (
                "Webhook URL host could not be resolved"
                if exc.reason == "unresolvable"
                else "Webhook URL resolves to a private or internal address"
            )
        except TimeoutError:
            error = f"Timed out after {self.timeout:g}s"
            timed_out = True
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            error = f"Connection failed: {type(exc).__name__}"
        if error is None and status is not None and not 200 <= status < 300:
            error = f"HTTP {status}"
        duration_ms = int((time.perf_counter() - started) * 1000)
        return Attempt(status, error, duration_ms, prefix[:BODY_PREFIX].decode("utf-8", errors="replace"), timed_out)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
