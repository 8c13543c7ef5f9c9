"""One HTTP exchange at the pure-ASGI level, for the hot endpoints (quality.md B1/B2).

`POST /v1/sms/send` and `POST /v1/webhooks/ringcentral` skip Starlette's `Request`, `Response`
and exception layers (a third of their CPU when measured): this module gives them what those
layers gave — header lookup, the body, JSON answers, and the one error table of `api.errors`
(same status, same `{"error": …}` body, same `Retry-After`) — written straight to `send`.
The conventions (request id, security headers, body limit, metrics) stay with
`GatewayMiddleware`, which wraps these endpoints like every other route.
"""

from __future__ import annotations

from collections.abc import Iterable

import orjson
from starlette.types import Message, Receive, Scope, Send

from gravity_sms.api.errors import STATUS_BY_ERROR
from gravity_sms.domain.errors import GravityError, TooManyRequests

JSON = b"application/json"
Headers = list[tuple[bytes, bytes]]


def header(scope: Scope, name: bytes) -> str | None:
    """The first value of a header (`name` in lower case, as ASGI servers give it)."""
    for key, value in scope["headers"]:
        if key == name:
            text: str = value.decode("latin-1")
            return text
    return None


async def read_body(receive: Receive) -> bytes:
    message: Message = await receive()
    body: bytes = message.get("body", b"")
    if not message.get("more_body", False):
        return body
    chunks = [body]
    while message.get("more_body", False):
        message = await receive()
        chunks.append(message.get("body", b""))
    return b"".join(chunks)


async def respond(send: Send, status: int, body: bytes, headers: Iterable[tuple[bytes, bytes]] = ()) -> None:
    out: Headers = [(b"content-length", str(len(body)).encode()), (b"content-type", JSON)]
    out.extend(headers)
    await send({"type": "http.response.start", "status": status, "headers": out})
    await send({"type": "http.response.body", "body": body})


def encode_headers(values: dict[str, str]) -> Headers:
    return [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in values.items()]


async def respond_error(send: Send, exc: GravityError, extra: dict[str, str] | None = None) -> None:
    """`api.errors.response_for`, written to `send`: same status, body and headers."""
    status = 500
    for kind, code in STATUS_BY_ERROR:
        if isinstance(exc, kind):
            status = code
            break
    if status == 500:
        await respond(send, 500, b'{"error":"Internal server error"}')
        return
    headers = dict(extra or {})
    if isinstance(exc, TooManyRequests):
        headers["Retry-After"] = str(exc.retry_after)
    await respond(send, status, orjson.dumps({"error": exc.message}), encode_headers(headers))
