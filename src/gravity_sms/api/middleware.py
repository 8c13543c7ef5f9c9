"""The contract's HTTP conventions as one pure-ASGI middleware (api.md §1).

One layer instead of several keeps the hot paths cheap: request id (echoing a sane caller id),
security headers, the 100 KB body limit (413 without reading the rest), the production HTTPS check,
per-route metrics, and the last-resort 500 `{"error": "Internal server error"}` logged with the
request id and never showing a stack trace.
"""

from __future__ import annotations

import itertools
import os
import re
import time
import uuid
from collections.abc import Mapping
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gravity_sms.telemetry import Metrics, get_logger, request_id_var

MAX_BODY = 100 * 1024
# Label combinations remembered (route templates x methods x statuses stay far below this).
MAX_OBSERVERS = 4096
_SANE_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")

SECURITY_HEADERS: list[tuple[bytes, bytes]] = [
    (b"strict-transport-security", b"max-age=31536000; includeSubDomains"),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"x-xss-protection", b"0"),
    (b"referrer-policy", b"no-referrer"),
]
DEFAULT_CSP = (b"content-security-policy", b"default-src 'none'")

log = get_logger("gravity.api")


class BodyTooLarge(Exception):
    pass


def _json_error(status: int, message: str) -> tuple[Message, Message]:
    body = b'{"error":"' + message.encode() + b'"}'
    start: Message = {
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
    }
    return start, {"type": "http.response.body", "body": body}


class RequestIds:
    """Request ids in UUID form: a random per-process prefix (74 random bits) and a counter.

    Unique without a system call per request (uuid4 read the OS random source each time, a few
    per cent of the send path's CPU); an id names a request in the logs and is no secret."""

    def __init__(self) -> None:
        self._prefix = str(uuid.uuid4())[:24]
        self._counter = itertools.count(int.from_bytes(os.urandom(5), "big"))

    def next(self) -> str:
        return f"{self._prefix}{next(self._counter) & 0xFFFFFFFFFFFF:012x}"


class GatewayMiddleware:
    """The outermost layer. `hot_routes` maps exact (method, path) pairs to pure-ASGI endpoints
    that are called straight from here, skipping Starlette's router and exception layers; every
    other request goes to `app`. Both ways get the same conventions."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        production: bool = False,
        metrics: Metrics | None = None,
        max_body: int = MAX_BODY,
        hot_routes: Mapping[tuple[str, str], ASGIApp] | None = None,
    ) -> None:
        self.app = app
        self.production = production
        self.metrics = metrics
        self.max_body = max_body
        self.hot_routes = dict(hot_routes or {})
        self._ids = RequestIds()
        self._observers: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = None
        content_length = None
        forwarded_proto = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                candidate = value.decode("latin-1")
                if _SANE_ID.match(candidate):
                    request_id = candidate
            elif name == b"content-length":
                content_length = value
            elif name == b"x-forwarded-proto":
                forwarded_proto = value
        if request_id is None:
            request_id = self._ids.next()
        token = request_id_var.set(request_id)
        rid = request_id.encode()
        status_holder = [500]
        started_response = [False]

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                started_response[0] = True
                status_holder[0] = message["status"]
                out = list(message.get("headers", ()))
                has_csp = False
                for name, _ in out:
                    if name.lower() == b"content-security-policy":
                        has_csp = True
                out.append((b"x-request-id", rid))
                out.extend(SECURITY_HEADERS)
                if not has_csp:
                    out.append(DEFAULT_CSP)
                message = {**message, "headers": out}
            await send(message)

        method = scope["method"]
        hot = self.hot_routes.get((method, scope["path"])) if self.hot_routes else None
        app = hot or self.app
        try:
            if self.production and forwarded_proto is not None and forwarded_proto.lower() == b"http":
                await self._reply(send_wrapper, 403, "HTTPS required")
                return
            if content_length is not None:
                try:
                    too_big = int(content_length) > self.max_body
                except ValueError:
                    too_big = False
                if too_big:
                    await self._reply(send_wrapper, 413, "Payload too large")
                    return
                await app(scope, receive, send_wrapper)
            else:
                await app(scope, self._limited(receive), send_wrapper)
        except BodyTooLarge:
            if not started_response[0]:
                await self._reply(send_wrapper, 413, "Payload too large")
        except Exception:
            log.exception("http.unhandled_error", path=scope.get("path"), method=method)
            if not started_response[0]:
                await self._reply(send_wrapper, 500, "Internal server error")
        finally:
            request_id_var.reset(token)
            if self.metrics is not None:
                route = scope["path"] if hot is not None else _route_name(scope)
                self._observe(method, route, status_holder[0], time.perf_counter() - started)

    def _observe(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count and time one request; the label children are looked up once per combination."""
        key = (method, route, status)
        pair = self._observers.get(key)
        if pair is None:
            assert self.metrics is not None
            pair = (
                self.metrics.requests.labels(method, route, str(status)),
                self.metrics.latency.labels(method, route),
            )
            if len(self._observers) < MAX_OBSERVERS:
                self._observers[key] = pair
        pair[0].inc()
        pair[1].observe(seconds)

    def _limited(self, receive: Receive) -> Receive:
        seen = 0
        limit = self.max_body

        async def wrapped() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge()
            return message

        return wrapped

    @staticmethod
    async def _reply(send: Send, status: int, message: str) -> None:
        start, body = _json_error(status, message)
        await send(start)
        await send(body)


def _route_name(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "unmatched"
