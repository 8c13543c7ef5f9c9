"""RingCentral's rate limits (ringcentral.md §6): per user, per app, per group, sliding window.

Owns the counters and the penalty rule; knows nothing of routes or error bodies beyond
the headers every answer carries.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gravity_sms.emulator.clock import EmulatorClock
    from gravity_sms.emulator.config import EmulatorConfig


@dataclass
class _Bucket:
    hits: deque[float] = field(default_factory=deque)
    penalty_until: float = 0.0


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    headers: dict[str, str]


class RateLimiter:
    """Counts requests per (user, app, group).

    A request over the limit starts a penalty; every request made during the penalty is
    refused and restarts it, so a client that keeps hammering never recovers (§6).
    """

    def __init__(self, config: EmulatorConfig, clock: EmulatorClock) -> None:
        self._config = config
        self._clock = clock
        self._buckets: dict[tuple[str, str, str], _Bucket] = {}

    def clear(self) -> None:
        self._buckets = {}

    def check(self, user: str, client: str, group: str) -> Verdict:
        limit = self._config.rate_limits.get(group, 0)
        window = self._config.rate_limit_window_seconds
        now = self._clock.now()
        bucket = self._buckets.setdefault((user, client, group), _Bucket())
        while bucket.hits and bucket.hits[0] <= now - window:
            bucket.hits.popleft()
        allowed = True
        if self._config.enforce_rate_limits:
            if now < bucket.penalty_until or len(bucket.hits) >= limit:
                bucket.penalty_until = now + self._config.rate_limit_penalty_seconds
                allowed = False
        if allowed:
            bucket.hits.append(now)
        remaining = max(0, limit - len(bucket.hits)) if allowed else 0
        headers = {
            "X-Rate-Limit-Group": group,
            "X-Rate-Limit-Limit": str(limit),
            "X-Rate-Limit-Remaining": str(remaining),
            "X-Rate-Limit-Window": str(int(window)),
        }
        if not allowed:
            headers["Retry-After"] = str(int(self._config.rate_limit_penalty_seconds))
        return Verdict(allowed, headers)

    def describe(self, group: str) -> dict[str, str]:
        """The headers for an answer that was not counted (e.g. no valid token)."""
        limit = self._config.rate_limits.get(group, 0)
        return {
            "X-Rate-Limit-Group": group,
            "X-Rate-Limit-Limit": str(limit),
            "X-Rate-Limit-Remaining": str(limit),
            "X-Rate-Limit-Window": str(int(self._config.rate_limit_window_seconds)),
        }
