"""Standing faults: latency, 5xx, 429 bursts, hangs, dropped connections, unreadable answers,
SMS failures.

Owns the fault rules and the ASGI middleware that applies route faults before routing.
One-shot actions (expire tokens, blacklist...) act on the state directly in control.py.
"""

from __future__ import annotations

import asyncio
import fnmatch
import json
import random
from dataclasses import asdict, dataclass
from typing import Any

import httpx
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gravity_sms.emulator.errors import invalid_parameter

CONTROL_PREFIX = "/_emulator"
ROUTE_KINDS = ("latency", "serverError", "rateLimit", "hang", "drop", "garble")


class ConnectionDropped(httpx.RemoteProtocolError):
    """Raised by the drop fault after the status line went out.

    Over a socket, uvicorn then closes the connection mid-response; an in-process
    `httpx.ASGITransport` client receives this very exception, which is what httpx raises
    for a real drop, so client code sees the same failure either way.
    """


@dataclass
class RouteFault:
    kind: str
    path: str = "/restapi/*"
    method: str | None = None
    count: int | None = None
    probability: float | None = None
    seconds: float = 0.0
    status: int = 503
    retry_after: int = 60

    def matches(self, method: str, path: str) -> bool:
        if self.method is not None and self.method.upper() != method.upper():
            return False
        return fnmatch.fnmatchcase(path, self.path)

    def public(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass
class DeliveryFailure:
    to: str | None
    status: str
    error_code: str
    count: int | None

    def public(self) -> dict[str, Any]:
        return {"to": self.to, "status": self.status, "errorCode": self.error_code, "count": self.count}


class FaultBook:
    """The standing faults, consulted by the middleware and by the SMS endpoint."""

    def __init__(self, seed: int) -> None:
        self._seed = seed
        self.clear()

    def clear(self) -> None:
        self.routes: list[RouteFault] = []
        self.delivery_failures: list[DeliveryFailure] = []
        self.rng = random.Random(self._seed)

    def reseed(self, seed: int) -> None:
        self._seed = seed
        self.rng = random.Random(seed)

    def add_route(self, kind: str, spec: dict[str, Any]) -> RouteFault:
        fault = RouteFault(
            kind=kind,
            path=str(spec.get("path", "/restapi/*")),
            method=spec.get("method"),
            count=_opt_int(spec.get("count")),
            probability=_opt_float(spec.get("probability")),
            seconds=float(spec.get("seconds", 3600.0 if kind == "hang" else 0.0)),
            status=int(spec.get("status", 503)),
            retry_after=int(spec.get("retryAfter", 60)),
        )
        if kind != "latency" and fault.probability is None:
            # A terminal fault without a probability fires on the next `count` requests
            # (once when no count is given).
            fault.count = 1 if fault.count is None else fault.count
        self.routes.append(fault)
        return fault

    def add_delivery_failure(self, spec: dict[str, Any]) -> DeliveryFailure:
        status = str(spec.get("status", "DeliveryFailed"))
        if status not in ("DeliveryFailed", "SendingFailed"):
            raise invalid_parameter("deliveryFailure.status", status)
        default_code = "SMS-CAR-450" if status == "DeliveryFailed" else "SMS-RC-413"
        failure = DeliveryFailure(
            to=spec.get("to"),
            status=status,
            error_code=str(spec.get("errorCode", default_code)),
            count=_opt_int(spec.get("count")),
        )
        self.delivery_failures.append(failure)
        return failure

    def take_delivery_failure(self, to: str) -> tuple[str, str] | None:
        for failure in self.delivery_failures:
            if failure.to is None or failure.to == to:
                if failure.count is not None:
                    failure.count -= 1
                    if failure.count <= 0:
                        self.delivery_failures.remove(failure)
                return failure.status, failure.error_code
        return None

    def pick(self, method: str, path: str) -> tuple[float, RouteFault | None]:
        """Total latency to add, and the terminal fault (if any) this request triggers."""
        latency = 0.0
        chosen: RouteFault | None = None
        for fault in list(self.routes):
            if not fault.matches(method, path):
                continue
            if fault.kind == "latency":
                latency += fault.seconds
                continue
            if chosen is not None:
                continue
            if fault.probability is not None and self.rng.random() >= fault.probability:
                continue
            if fault.count is not None:
                fault.count -= 1
                if fault.count <= 0:
                    self.routes.remove(fault)
            chosen = fault
        return latency, chosen

    def public(self) -> dict[str, Any]:
        return {
            "routes": [f.public() for f in self.routes],
            "deliveryFailures": [f.public() for f in self.delivery_failures],
        }


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _json_body(status: int, code: str, message: str) -> bytes:
    return json.dumps(
        {"errorCode": code, "message": message, "errors": [{"errorCode": code, "message": message}]}
    ).encode()


class FaultMiddleware:
    """Applies route faults to every request outside the control API."""

    def __init__(self, app: ASGIApp, book: FaultBook) -> None:
        self.app = app
        self.book = book

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(CONTROL_PREFIX):
            await self.app(scope, receive, send)
            return
        latency, fault = self.book.pick(scope["method"], scope["path"])
        if latency > 0:
            await asyncio.sleep(latency)
        if fault is None or fault.kind == "latency":
            await self.app(scope, receive, send)
            return
        scope.setdefault("state", {})["fault"] = fault.kind
        if fault.kind == "garble":
            # Handled for real (an SMS is created), but the answer arrives cut in half.
            await self.app(scope, receive, _garbling(send))
        elif fault.kind == "serverError":
            if fault.status == 503:
                body = _json_body(503, "CMN-211", "Service Temporary Unavailable")
            else:
                body = _json_body(fault.status, "CMN-201", "Internal Server Error")
            await _answer(send, fault.status, body, {})
        elif fault.kind == "rateLimit":
            body = _json_body(429, "CMN-301", "Request rate exceeded")
            await _answer(send, 429, body, {"retry-after": str(fault.retry_after)})
        elif fault.kind == "hang":
            if not await _hang(receive, fault.seconds):
                await _answer(send, 504, _json_body(504, "CMN-211", "Gateway Timeout"), {})
        else:
            # Promise a body, then vanish: uvicorn closes the socket mid-response.
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", b"64")],
                }
            )
            raise ConnectionDropped("Server disconnected without sending a response.")


def _garbling(send: Send) -> Send:
    """Passes the status and headers through, but only the first half of the body, with a
    matching `Content-Length`: a well-formed HTTP answer the client cannot parse."""
    start: Message | None = None
    chunks: list[bytes] = []

    async def garbled(message: Message) -> None:
        nonlocal start
        if message["type"] == "http.response.start":
            start = message
            return
        if message["type"] != "http.response.body" or start is None:
            await send(message)
            return
        chunks.append(message.get("body", b""))
        if message.get("more_body", False):
            return
        body = b"".join(chunks)
        body = body[: len(body) // 2]
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(body)).encode()))
        await send({**start, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return garbled


async def _hang(receive: Receive, seconds: float) -> bool:
    """Waits `seconds`, or until the client gives up; True when it did."""

    async def until_disconnect() -> None:
        while True:
            message: Message = await receive()
            if message["type"] == "http.disconnect":
                return

    try:
        await asyncio.wait_for(until_disconnect(), timeout=seconds)
    except TimeoutError:
        return False
    return True


async def _answer(send: Send, status: int, body: bytes, headers: dict[str, str]) -> None:
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.encode(), v.encode()) for k, v in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})
