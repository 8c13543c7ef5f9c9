"""The broker contract suite's fixtures: every port on memory and on Redis (random key prefix)."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from gravity_sms.broker.memory import (
    MemoryBroker,
    MemoryKeyCache,
    MemoryLockManager,
    MemoryRateLimiter,
    MemoryTokenStore,
)
from gravity_sms.domain.clock import ManualClock
from tests.conftest import REDIS_URL


@dataclass
class Ports:
    """One backend's ports. `peer` is a second node's ports on the same backend (Redis), or the
    same objects (memory: one process is one node)."""

    kind: str
    clock: ManualClock
    broker: Any
    limiter: Any
    key_cache: Any
    tokens: Any
    locks: Any
    peer: Ports | None = None

    async def expire(self, seconds: float) -> None:
        """Let `seconds` pass for the token store (the manual clock, or real time for Redis TTLs)."""
        self.clock.advance(seconds)
        if self.kind == "redis":
            import asyncio

            await asyncio.sleep(seconds)


def _memory(clock: ManualClock) -> Ports:
    return Ports(
        "memory",
        clock,
        MemoryBroker(),
        MemoryRateLimiter(clock),
        MemoryKeyCache(),
        MemoryTokenStore(clock),
        MemoryLockManager(),
    )


def _redis(client: Any, prefix: str, clock: ManualClock) -> Ports:
    from gravity_sms.broker.redis import (
        RedisBroker,
        RedisKeyCache,
        RedisLockManager,
        RedisRateLimiter,
        RedisTokenStore,
    )

    return Ports(
        "redis",
        clock,
        RedisBroker(client, prefix=prefix),
        RedisRateLimiter(client, prefix=prefix, clock=clock),
        RedisKeyCache(client, prefix=prefix),
        RedisTokenStore(client, prefix=prefix),
        RedisLockManager(client, prefix=prefix),
    )


async def drop_prefix(client: Any, prefix: str) -> None:
    keys = [key async for key in client.scan_iter(match=prefix + "*", count=500)]
    if keys:
        await client.delete(*keys)


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def ports(request: pytest.FixtureRequest) -> AsyncIterator[Ports]:
    clock = ManualClock()
    if request.param == "memory":
        mem = _memory(clock)
        mem.peer = mem
        yield mem
        await mem.broker.close()
        return
    if not REDIS_URL:
        pytest.skip("GRAVITY_TEST_REDIS_URL is not set: Redis variant not run")
    from gravity_sms.broker.redis import connect_redis

    prefix = f"test:{secrets.token_hex(6)}:"
    node_a, node_b = connect_redis(REDIS_URL), connect_redis(REDIS_URL)
    ports = _redis(node_a, prefix, clock)
    ports.peer = _redis(node_b, prefix, clock)
    try:
        yield ports
    finally:
        await ports.broker.close()
        await ports.peer.broker.close()
        await drop_prefix(node_a, prefix)
        await node_a.aclose()
        await node_b.aclose()
