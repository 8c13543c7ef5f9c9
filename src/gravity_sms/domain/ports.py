"""Ports: the seams between the domain and its adapters (store, broker, crypto).

Each port has an in-process implementation for the single-node default and, where a cluster
needs shared state, a Redis one (`gravity_sms.broker`). Store ports live beside the concept they
serve (`gravity_sms.domain.*`) and are implemented by `gravity_sms.store.SqlStore`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

from gravity_sms.domain.models import AuthContext

EventHandler = Callable[[dict[str, Any]], Awaitable[None]]


class Broker(Protocol):
    """Publishes gateway events (`sms_inbound`, `sms_status`, …) to every node's subscribers."""

    async def publish(self, channel: str, event: dict[str, Any]) -> None: ...

    def subscribe(self, channel: str) -> AbstractAsyncContextManager[AsyncIterator[dict[str, Any]]]:
        """`async with broker.subscribe("events") as events: async for event in events: ...`"""
        ...

    async def close(self) -> None: ...


class RateLimiter(Protocol):
    """Sliding-window counters keyed by an opaque string."""

    async def hit(self, key: str, limit: int, window: float) -> tuple[bool, int, float]:
        """Count one request. Returns (allowed, remaining, seconds until a slot frees).

        A refused hit is not counted.
        """
        ...

    async def peek(self, key: str, window: float) -> tuple[int, float]:
        """(hits counted in the window, seconds until the oldest leaves it), without adding one."""
        ...

    async def reset(self, key: str) -> None: ...


class KeyCache(Protocol):
    """API-key hash → AuthContext. Invalidation is immediate on every node."""

    async def get(self, key_hash: str) -> AuthContext | None: ...

    async def put(self, key_hash: str, ctx: AuthContext) -> None: ...

    async def invalidate(self, key_hash: str) -> None: ...

    async def invalidate_tenant(self, tenant_id: str) -> None: ...


class TokenStore(Protocol):
    """Short-lived single-use tokens (WebSocket `wst_` tokens): shared by every node."""

    async def put(self, token: str, value: dict[str, Any], ttl: float) -> None: ...

    async def take(self, token: str) -> dict[str, Any] | None:
        """Return and delete atomically; None when unknown or expired."""
        ...


class LockManager(Protocol):
    """Named mutual exclusion across the cluster (single-flight refresh, one renewer)."""

    def lock(self, name: str, ttl: float = 30.0) -> AbstractAsyncContextManager[bool]:
        """`async with locks.lock("refresh:ext") as held:` waits until held (True) or ttl passes."""
        ...

    def try_lock(self, name: str, ttl: float = 30.0) -> AbstractAsyncContextManager[bool]:
        """Like lock() but never waits: `held` is False when another holder has it."""
        ...


class SecretBox(Protocol):
    """Encrypts secrets at rest (AES-256-GCM) and hashes lookup tokens (SHA-256)."""

    def encrypt(self, plaintext: str) -> str: ...

    def decrypt(self, ciphertext: str) -> str: ...

    def hash(self, token: str) -> str: ...
