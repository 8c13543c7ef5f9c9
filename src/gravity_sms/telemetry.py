"""Logs and metrics.

Logs are structured: a stable event name (`outbound.sent`, `webhook.failed`) plus fields, with the
request id from a context variable; `console` or `json` format. Never log a key, token, secret or
message body — callers pass ids and counts only, and `redact()` masks anything that looks like a
credential as a last line of defence.

Metrics live in a registry per gateway instance (tests build many), rendered at `/metrics`.
"""

from __future__ import annotations

import contextvars
import logging
import re
import sys
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import orjson
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)

_SECRET_RE = re.compile(
    r"(sgw_[0-9a-f]{8})[0-9a-f]{24}|(wst_)[0-9a-f]{64}|(whsec_)[A-Za-z0-9+/=]{20,}"
    r"|(Bearer\s+)[^\s\"']+",
    re.IGNORECASE,
)


def redact(text: str) -> str:
    return _SECRET_RE.sub(lambda m: (m.group(1) or m.group(2) or m.group(3) or m.group(4)) + "***", text)


class _Formatter(logging.Formatter):
    def __init__(self, json_format: bool) -> None:
        super().__init__()
        self.json_format = json_format

    def format(self, record: logging.LogRecord) -> str:
        fields: dict[str, Any] = dict(getattr(record, "fields", {}) or {})
        rid = request_id_var.get()
        if rid and "request_id" not in fields:
            fields["request_id"] = rid
        if record.exc_info:
            fields["exc"] = self.formatException(record.exc_info)
        if self.json_format:
            doc = {
                "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
                "level": record.levelname.lower(),
                "logger": record.name,
                "event": record.getMessage(),
                **fields,
            }
            return redact(orjson.dumps(doc, default=str).decode())
        extras = " ".join(f"{k}={v}" for k, v in fields.items())
        line = f"{self.formatTime(record, '%H:%M:%S')} {record.levelname:<7} {record.getMessage()}"
        return redact(f"{line} {extras}".rstrip())


class EventLogger:
    """`log.info("outbound.sent", message_id=..., attempts=...)`."""

    def __init__(self, name: str) -> None:
        self._logger = logging.getLogger(name)

    def enabled_for(self, level: int) -> bool:
        return self._logger.isEnabledFor(level)

    def _log(self, level: int, event: str, exc_info: bool = False, **fields: Any) -> None:
        if self._logger.isEnabledFor(level):
            self._logger.log(level, event, extra={"fields": fields}, exc_info=exc_info)

    def debug(self, event: str, **fields: Any) -> None:
        self._log(logging.DEBUG, event, **fields)

    def info(self, event: str, **fields: Any) -> None:
        self._log(logging.INFO, event, **fields)

    def warning(self, event: str, **fields: Any) -> None:
        self._log(logging.WARNING, event, **fields)

    def error(self, event: str, **fields: Any) -> None:
        self._log(logging.ERROR, event, **fields)

    def exception(self, event: str, **fields: Any) -> None:
        self._log(logging.ERROR, event, exc_info=True, **fields)


def get_logger(name: str) -> EventLogger:
    return EventLogger(name)


class LogThrottle:
    """At most one log line per key every `every` seconds: `admit(key)` answers None to stay
    quiet, else how many lines it kept quiet since the last one (a dead webhook endpoint fails
    hundreds of deliveries a second; the delivery log and the metrics still count each)."""

    def __init__(self, every: float = 10.0, size: int = 1024, clock: Callable[[], float] = time.monotonic) -> None:
        self.every = every
        self.size = size
        self._clock = clock
        self._seen: OrderedDict[str, list[float]] = OrderedDict()  # key -> [last logged at, suppressed]

    def admit(self, key: str) -> int | None:
        now = self._clock()
        entry = self._seen.get(key)
        if entry is not None and now - entry[0] < self.every:
            entry[1] += 1
            return None
        suppressed = int(entry[1]) if entry is not None else 0
        self._seen[key] = [now, 0]
        self._seen.move_to_end(key)
        if len(self._seen) > self.size:
            self._seen.popitem(last=False)
        return suppressed


def configure_logging(level: str = "info", fmt: str = "console") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter(json_format=fmt == "json"))
    root = logging.getLogger("gravity")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "gravity_http_requests_total", "HTTP requests", ["method", "route", "status"], registry=r
        )
        self.latency = Histogram(
            "gravity_http_request_duration_seconds",
            "HTTP request latency",
            ["method", "route"],
            registry=r,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )
        self.queue_depth = Gauge("gravity_outbound_queue_depth", "Outbound messages queued or sending", registry=r)
        self.queue_oldest_age = Gauge(
            "gravity_outbound_oldest_queued_seconds", "Age of the oldest queued outbound message", registry=r
        )
        self.sends = Counter("gravity_outbound_sends_total", "Outbound send outcomes", ["outcome"], registry=r)
        self.rc_calls = Counter(
            "gravity_ringcentral_calls_total", "RingCentral API calls", ["operation", "status"], registry=r
        )
        self.webhook_deliveries = Counter(
            "gravity_webhook_deliveries_total", "App/trigger deliveries", ["kind", "outcome"], registry=r
        )
        self.inbound = Counter("gravity_inbound_events_total", "RingCentral webhook events", ["outcome"], registry=r)
        self.ws_connections = Gauge("gravity_websocket_connections", "Open WebSocket connections", registry=r)
