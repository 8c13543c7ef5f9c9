"""The emulator's clock: real wall time plus an offset that the control API can advance.

Owns time and its RingCentral text form; knows nothing of what is scheduled.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime


class EmulatorClock:
    """Seconds since the epoch, shifted by `advance()` so tests can fast-forward expiry."""

    def __init__(self) -> None:
        self._offset = 0.0

    @property
    def offset(self) -> float:
        return self._offset

    def now(self) -> float:
        return time.time() + self._offset

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        self._offset += seconds

    def reset(self) -> None:
        self._offset = 0.0


def iso(ts: float) -> str:
    """RingCentral's timestamp style: ISO 8601, milliseconds, `Z` (ringcentral.md, intro)."""
    dt = datetime.fromtimestamp(ts, tz=UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def parse_iso(text: str) -> float:
    """Accepts what clients send in `dateFrom`/`dateTo`: ISO 8601, with or without zone."""
    value = text.strip()
    if value.endswith("Z"):
        value = value[:-1] + "+00:00"
    dt = datetime.fromisoformat(value)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()
