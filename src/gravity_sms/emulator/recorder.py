"""The request log behind `GET /_emulator/requests`.

Owns the ASGI middleware that records every request outside the control API: method,
path, query, a few headers, the body as JSON or form, and the answer's status. It never
keeps a token, secret or code: the Authorization header is reduced to its scheme and
secret form fields are masked.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gravity_sms.emulator.clock import iso
from gravity_sms.emulator.faults import CONTROL_PREFIX

if TYPE_CHECKING:
    from gravity_sms.emulator.state import EmulatorState

SECRET_FIELDS = frozenset(
    {
        "code",
        "code_verifier",
        "refresh_token",
        "client_secret",
        "token",
        "assertion",
        "password",
        "access_token",
        "verificationToken",
    }
)
REDACTED = "<redacted>"
KEPT_HEADERS = ("content-type", "user-agent", "accept", "x-request-id")


def parse_form(body: bytes) -> dict[str, str]:
    """application/x-www-form-urlencoded, last value wins."""
    parsed = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    return {k: v[-1] for k, v in parsed.items()}


def _redact(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: (REDACTED if k in SECRET_FIELDS else _redact(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact(v) for v in value]
    return value


def _body_view(content_type: str, body: bytes) -> dict[str, Any]:
    if not body:
        return {}
    if "json" in content_type:
        try:
            return {"json": _redact(json.loads(body))}
        except ValueError:
            return {"rawLength": len(body)}
    if "x-www-form-urlencoded" in content_type:
        return {"form": _redact(parse_form(body))}
    return {"rawLength": len(body)}


class RecorderMiddleware:
    def __init__(self, app: ASGIApp, state: EmulatorState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(CONTROL_PREFIX):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        auth = headers.get("authorization", "")
        scheme = auth.split(" ", 1)[0] if auth else None
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        entry: dict[str, Any] = {
            "seq": self.state.new_request_seq(),
            "at": iso(self.state.clock.now()),
            "method": scope["method"],
            "path": scope["path"],
            "query": {k: (v[0] if len(v) == 1 else v) for k, v in query.items()},
            "headers": {k: headers[k] for k in KEPT_HEADERS if k in headers},
            "authorization": scheme,
            "bearer": bool(scheme and scheme.lower() == "bearer" and len(auth) > len("Bearer ")),
            "status": None,
            "outcome": "pending",
            **_body_view(headers.get("content-type", ""), body),
        }
        self.state.requests.append(entry)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        async def watch(message: Message) -> None:
            if message["type"] == "http.response.start":
                entry["status"] = message["status"]
            await send(message)

        try:
            await self.app(scope, replay, watch)
        except BaseException:
            entry["outcome"] = scope.get("state", {}).get("fault") or "error"
            raise
        entry["outcome"] = scope.get("state", {}).get("fault") or "answered"
