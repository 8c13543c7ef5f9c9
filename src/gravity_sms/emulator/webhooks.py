"""Outbound HTTP to webhook addresses: the validation handshake and event notifications.

Owns what RingCentral sends (ringcentral.md §2-§3): headers, envelopes, the 1024-byte
handshake rule, and counting consecutive failures up to blacklisting. It decides nothing
about which events exist; inbound.py and ticker.py build those.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from http import HTTPStatus
from typing import Any

import httpx

from gravity_sms.emulator.clock import iso
from gravity_sms.emulator.errors import ApiError, rest_error
from gravity_sms.emulator.state import DeliveryRecord, EmulatorState, Subscription

USER_AGENT = "RingCentral-Webhook/8.3"
MAX_HANDSHAKE_RESPONSE = 1024


class _Borrowed(httpx.AsyncBaseTransport):
    """Lends a caller-owned transport to a short-lived client without closing it."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self._inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self._inner.handle_async_request(request)


def _client(state: EmulatorState, timeout: float) -> httpx.AsyncClient:
    inner = state.config.webhook_transport
    transport = _Borrowed(inner) if inner is not None else None
    return httpx.AsyncClient(transport=transport, timeout=timeout, follow_redirects=False, trust_env=False)


async def _post(
    state: EmulatorState, address: str, body: bytes, headers: dict[str, str], seconds: float
) -> httpx.Response:
    async with _client(state, seconds) as client:
        # asyncio.timeout as well: an in-process transport does not enforce httpx timeouts.
        async with asyncio.timeout(seconds):
            return await client.post(address, content=body, headers=headers)


def response_size(response: httpx.Response) -> int:
    """Bytes on the wire, approximately: status line, headers, blank line, body."""
    reason = response.reason_phrase or ""
    size = len(f"HTTP/1.1 {response.status_code} {reason}\r\n") + 2 + len(response.content)
    for name, value in response.headers.raw:
        size += len(name) + 2 + len(value) + 2
    return size


def _record(state: EmulatorState, kind: str, sub_id: str, address: str, status: int | None, error: str | None) -> None:
    state.deliveries.append(DeliveryRecord(kind, sub_id, address, state.clock.now(), status, error))


async def handshake(state: EmulatorState, address: str, sub_id: str) -> None:
    """Validates the address as RingCentral does before answering POST /subscription."""
    token = str(uuid.uuid4())
    headers = {"Validation-Token": token, "User-Agent": USER_AGENT}
    try:
        response = await _post(state, address, b"", headers, state.config.handshake_timeout_seconds)
    except (httpx.HTTPError, TimeoutError, OSError) as exc:
        _record(state, "handshake", sub_id, address, None, type(exc).__name__)
        raise rest_error(400, "SUB-521", "Webhook address is not reachable") from None
    failure: ApiError | None = None
    if response.status_code != 200:
        failure = rest_error(400, "SUB-521", f"WebHook responds with unexpected HTTP status [{response.status_code}]")
    elif response.headers.get("validation-token") != token:
        failure = rest_error(400, "SUB-520", "Validation Token is not returned")
    elif response_size(response) > MAX_HANDSHAKE_RESPONSE:
        failure = rest_error(400, "SUB-525", "WebHook response is invalid: response size exceeds 1024 bytes")
    _record(
        state,
        "handshake",
        sub_id,
        address,
        response.status_code,
        None if failure is None else failure.body["errorCode"],
    )
    if failure is not None:
        raise failure


def envelope(state: EmulatorState, sub: Subscription, event: str, body: dict[str, Any]) -> dict[str, Any]:
    """ringcentral.md §3: the envelope of every notification."""
    return {
        "uuid": state.new_event_uuid(),
        "event": event,
        "timestamp": iso(state.clock.now()),
        "subscriptionId": sub.id,
        "ownerId": sub.extension_id,
        "body": body,
    }


def deliverable(state: EmulatorState, sub: Subscription) -> bool:
    return state.subscriptions.get(sub.id) is sub and sub.status == "Active" and not sub.expired(state.clock.now())


async def deliver(state: EmulatorState, sub: Subscription, event: dict[str, Any], kind: str) -> dict[str, Any]:
    """One notification; failures count toward blacklisting (ringcentral.md §2, Failures)."""
    headers = {"Content-Type": "application/json; charset=UTF-8", "User-Agent": USER_AGENT}
    if sub.verification_token:
        headers["Verification-Token"] = sub.verification_token
    status: int | None = None
    error: str | None = None
    reason: str
    try:
        response = await _post(
            state, sub.address, json.dumps(event).encode(), headers, state.config.delivery_timeout_seconds
        )
        status = response.status_code
        reason = f"Webhook responses with code: [{status}], reason: [{_phrase(status)}]"
    except (TimeoutError, httpx.TimeoutException):
        error = "timeout"
        reason = "Webhook response timeout"
    except (httpx.HTTPError, OSError) as exc:
        error = type(exc).__name__
        reason = "Webhook address is not reachable"
    _record(state, kind, sub.id, sub.address, status, error)
    if status is not None and 200 <= status < 300:
        sub.consecutive_failures = 0
    else:
        sub.consecutive_failures += 1
        if sub.status == "Active" and sub.consecutive_failures >= state.config.blacklist_after_failures:
            state.blacklist(sub, reason)
    return {"subscriptionId": sub.id, "event": event["event"], "status": status, "error": error}


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"
