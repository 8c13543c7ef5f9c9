"""Throughput control for outbound SMS (api.md §5 point 5, ringcentral.md §6).

Two independent gates, both asked before a send and neither ever failing a message:

- `NumberLimit`: at most N sends per `from` number per 60 s, counted through the `RateLimiter`
  port (a sliding window; in-process or Redis, so a cluster shares one count).
- `ExtensionPacer`: RingCentral's own limit per extension (user, app and group). It keeps a log of
  this node's sends per extension, learns the limit and window from the `X-Rate-Limit-*` headers
  of each answer, stops at the limit so steady state draws no 429, and honours a 429's
  `Retry-After` for that extension only — every request during RingCentral's penalty restarts it
  (ringcentral.md §6), so nothing at all goes to a paused extension until the pause is over.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from gravity_sms.domain.clock import Clock
from gravity_sms.domain.ports import RateLimiter
from gravity_sms.domain.provider import RateInfo

NUMBER_WINDOW = 60.0
# The SMS call is in RingCentral's Medium group: 40 requests per 60 s (ringcentral.md §6).
DEFAULT_LIMIT = 40
DEFAULT_WINDOW = 60.0
# A request leaves RingCentral's window a little after it leaves ours (it arrived later).
WINDOW_MARGIN = 1.0
# 429 without Retry-After: wait at least 30 s (ringcentral.md §6).
DEFAULT_PENALTY = 30.0


class NumberLimit:
    def __init__(self, limiter: RateLimiter, per_window: int, window: float = NUMBER_WINDOW) -> None:
        self.limiter = limiter
        self.per_window = per_window
        self.window = window

    async def acquire(self, tenant_id: str, from_number: str) -> float:
        """Take a slot: 0.0 when granted, else seconds until one frees."""
        allowed, _, reset = await self.limiter.hit(
            f"outbound:number:{tenant_id}:{from_number}", self.per_window, self.window
        )
        return 0.0 if allowed else max(reset, 0.001)


@dataclass
class _Lane:
    sent: deque[float] = field(default_factory=deque)
    limit: int = DEFAULT_LIMIT
    window: float = DEFAULT_WINDOW
    paused_until: float = 0.0


class ExtensionPacer:
    """Per-extension send pacing on this node (times from the injected clock's monotonic scale)."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._lanes: dict[str, _Lane] = {}

    def _lane(self, key: str) -> _Lane:
        lane = self._lanes.get(key)
        if lane is None:
            lane = self._lanes[key] = _Lane()
        return lane

    def wait_time(self, key: str) -> float:
        """Seconds before the next send to this extension may start (0.0: now)."""
        lane = self._lane(key)
        now = self.clock.monotonic()
        horizon = lane.window + WINDOW_MARGIN
        while lane.sent and lane.sent[0] <= now - horizon:
            lane.sent.popleft()
        wait = max(0.0, lane.paused_until - now)
        if len(lane.sent) >= lane.limit:
            wait = max(wait, lane.sent[len(lane.sent) - lane.limit] + horizon - now)
        return wait

    def reserve(self, key: str) -> None:
        """Count a send that is about to go (call right after `wait_time` said 0)."""
        self._lane(key).sent.append(self.clock.monotonic())

    def observe(self, key: str, rate: RateInfo | None) -> None:
        """Learn from the headers of an answer of the SMS call's group."""
        if rate is None:
            return
        lane = self._lane(key)
        if rate.limit:
            lane.limit = rate.limit
        if rate.window:
            lane.window = float(rate.window)
        if rate.remaining is not None and rate.remaining <= 0 and len(lane.sent) < lane.limit:
            # Someone else (another node, another client of the account) used the budget: our
            # log cannot say when it frees, so wait a whole window rather than draw a penalty.
            self.pause(key, lane.window)

    def pause(self, key: str, seconds: float | None) -> None:
        """A 429: nothing goes to this extension for `seconds` (Retry-After) or the default."""
        lane = self._lane(key)
        until = self.clock.monotonic() + (seconds if seconds and seconds > 0 else DEFAULT_PENALTY)
        lane.paused_until = max(lane.paused_until, until)

    def paused_for(self, key: str) -> float:
        return max(0.0, self._lane(key).paused_until - self.clock.monotonic())
