"""One bounded connection pool per webhook endpoint.

httpcore 1.0 rescans every pooled connection and every queued request whenever a request is
added or removed, so a single unbounded pool shared by every endpoint costs more the more
requests are in flight. Here each endpoint — scheme, address, port, `Host` header, SNI name and
path, so a pinned (SSRF-checked) address is its own pool — gets its own pool capped at the
dispatcher's per-endpoint in-flight bound: each scan stays short, a hanging host fills only its
own pools, and a request the dispatcher admitted never queues for a connection (keying by origin
alone would make three apps on one host share one cap of 100). Pools live in an LRU of at most
`max_origins`; the least recently used idle pool is closed when a new endpoint needs room (a
pool with a reply still open is never closed under it; the LRU may briefly exceed its size).
"""

from __future__ import annotations

import ssl
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx

PoolKey = tuple[str, str, int | None, str, str, bytes]
TransportFactory = Callable[[], httpx.AsyncBaseTransport]


def origin_of(request: httpx.Request) -> PoolKey:
    sni = request.extensions.get("sni_hostname") or ""
    return (
        request.url.scheme,
        request.url.host,
        request.url.port,
        str(sni),
        request.headers.get("host", ""),
        request.url.raw_path,
    )


def http_pool_factory(per_origin: int) -> TransportFactory:
    """Real pools: one shared TLS context, at most `per_origin` connections each."""
    context = ssl.create_default_context()
    limits = httpx.Limits(max_connections=per_origin, max_keepalive_connections=per_origin)

    def make() -> httpx.AsyncBaseTransport:
        return httpx.AsyncHTTPTransport(verify=context, limits=limits, trust_env=False)

    return make


class _Pool:
    __slots__ = ("evicted", "open", "transport")

    def __init__(self, transport: httpx.AsyncBaseTransport) -> None:
        self.transport = transport
        self.open = 0
        self.evicted = False


class _TrackedStream(httpx.AsyncByteStream):
    """The response body; closing it releases the pool for eviction."""

    def __init__(self, inner: httpx.AsyncByteStream, release: Callable[[], Awaitable[None]]) -> None:
        self._inner = inner
        self._release = release
        self._released = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._inner:
            yield chunk

    async def aclose(self) -> None:
        try:
            await self._inner.aclose()
        finally:
            if not self._released:
                self._released = True
                await self._release()


class OriginPools(httpx.AsyncBaseTransport):
    def __init__(self, factory: TransportFactory, *, max_origins: int = 256) -> None:
        self._factory = factory
        self._max_origins = max_origins
        self._pools: OrderedDict[PoolKey, _Pool] = OrderedDict()
        self._closed = False

    def origins(self) -> list[PoolKey]:
        """Open pools, least recently used first."""
        return list(self._pools)

    def _pool(self, key: PoolKey) -> tuple[_Pool, list[_Pool]]:
        pool = self._pools.get(key)
        if pool is not None:
            self._pools.move_to_end(key)
            return pool, []
        pool = _Pool(self._factory())
        self._pools[key] = pool
        evicted: list[_Pool] = []
        if len(self._pools) > self._max_origins:
            for old_key, old in list(self._pools.items()):
                if len(self._pools) <= self._max_origins:
                    break
                if old.open == 0 and old is not pool:
                    del self._pools[old_key]
                    old.evicted = True
                    evicted.append(old)
        return pool, evicted

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self._closed:
            raise httpx.ConnectError("Webhook client is closed", request=request)
        pool, evicted = self._pool(origin_of(request))
        pool.open += 1
        try:
            for old in evicted:
                await old.transport.aclose()
            response = await pool.transport.handle_async_request(request)
        except BaseException:
            await self._release(pool)
            raise
        assert isinstance(response.stream, httpx.AsyncByteStream)

        async def release() -> None:
            await self._release(pool)

        return httpx.Response(
            status_code=response.status_code,
            headers=response.headers,
            stream=_TrackedStream(response.stream, release),
            extensions=response.extensions,
        )

    async def _release(self, pool: _Pool) -> None:
        pool.open -= 1
        if pool.open == 0 and (pool.evicted or self._closed):
            await pool.transport.aclose()

    async def aclose(self) -> None:
        self._closed = True
        pools = list(self._pools.values())
        self._pools.clear()
        for pool in pools:
            if pool.open == 0:
                await pool.transport.aclose()
            else:
                pool.evicted = True
