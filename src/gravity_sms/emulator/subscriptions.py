"""Webhook subscriptions (ringcentral.md §2): create with handshake, read, renew, update, delete.

Owns the subscription REST answers (subscription__created.json) and the `~` expansion of
event filters. Sending notifications is webhooks.py's job.
"""

from __future__ import annotations

import re
import uuid
from typing import Any
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gravity_sms.emulator.access import Caller, json_object, rest_endpoint
from gravity_sms.emulator.clock import iso
from gravity_sms.emulator.errors import invalid_parameter, not_found, rest_error
from gravity_sms.emulator.state import EmulatorState, Subscription, state_of
from gravity_sms.emulator.webhooks import handshake

BASE = "/restapi/v1.0/subscription"
DEFAULT_EXPIRES_IN = 604800
MAX_EXPIRES_IN = 315360000  # ten years, the webhook maximum


def expand_filter(raw: str, account_id: str, extension_id: str, sub_id: str) -> str:
    """`~` means the token's account / extension, and in the reminder filter this subscription."""
    expanded = raw.replace("/account/~", f"/account/{account_id}").replace("/extension/~", f"/extension/{extension_id}")
    return re.sub(r"^/restapi/v1\.0/subscription/~(?=$|\?)", f"{BASE}/{sub_id}", expanded)


def render(state: EmulatorState, sub: Subscription) -> dict[str, Any]:
    now = state.clock.now()
    body: dict[str, Any] = {
        "uri": f"{state.config.public_url}{BASE}/{sub.id}",
        "id": sub.id,
        "creationTime": iso(sub.creation_time),
        "status": sub.status,
        "eventFilters": list(sub.event_filters),
        "expirationTime": iso(sub.expiration_time),
        "expiresIn": max(0, int(sub.expiration_time - now)),
        "deliveryMode": {"transportType": "WebHook", "encryption": False, "address": sub.address},
    }
    if sub.status == "Blacklisted" and sub.blacklisted_at is not None:
        body["blacklistedData"] = {"reason": sub.blacklisted_reason or "", "blacklistedAt": iso(sub.blacklisted_at)}
    return body


def _filters(data: dict[str, Any]) -> list[str]:
    filters = data.get("eventFilters")
    if not isinstance(filters, list) or not filters:
        raise invalid_parameter("eventFilters")
    for item in filters:
        if not isinstance(item, str) or not item.startswith("/restapi/v1.0/"):
            raise invalid_parameter("eventFilters", str(item))
    return list(filters)


def _expires_in(data: dict[str, Any], default: int) -> int:
    value = data.get("expiresIn", default)
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_EXPIRES_IN:
        raise invalid_parameter("expiresIn", str(value))
    return value


def _owned(state: EmulatorState, caller: Caller, sub_id: str) -> Subscription:
    sub = state.subscriptions.get(sub_id)
    if (
        sub is None
        or sub.client_id != caller.client_id
        or sub.extension_id != caller.extension.id
        or sub.expired(state.clock.now())
    ):
        raise not_found("subscriptionId")
    return sub


@rest_endpoint("Medium")
async def create(request: Request, caller: Caller) -> Response:
    state = state_of(request)
    data = await json_object(request)
    requested = _filters(data)
    mode = data.get("deliveryMode")
    if not isinstance(mode, dict):
        raise invalid_parameter("deliveryMode")
    if str(mode.get("transportType", "")).lower() != "webhook":
        raise invalid_parameter("deliveryMode.transportType", str(mode.get("transportType")))
    address = mode.get("address")
    if (
        not isinstance(address, str)
        or urlsplit(address).scheme not in ("http", "https")
        or not urlsplit(address).netloc
    ):
        raise invalid_parameter("deliveryMode.address")
    if state.config.require_https and urlsplit(address).scheme != "https":
        raise rest_error(400, "SUB-523", "HTTPS is required for WebHook address")
    token = mode.get("verificationToken")
    if token is not None and not isinstance(token, str):
        raise invalid_parameter("deliveryMode.verificationToken")
    expires_in = _expires_in(data, DEFAULT_EXPIRES_IN)
    if (
        len(state.live_subscriptions(caller.client_id, caller.extension.id))
        >= state.config.max_subscriptions_per_user_app
    ):
        raise rest_error(403, "SUB-505", "The maximum number of subscriptions per user per app is exceeded")
    sub_id = str(uuid.uuid4())
    await handshake(state, address, sub_id)
    now = state.clock.now()
    sub = Subscription(
        id=sub_id,
        extension_id=caller.extension.id,
        account_id=caller.account_id,
        client_id=caller.client_id,
        event_filters=[expand_filter(f, caller.account_id, caller.extension.id, sub_id) for f in requested],
        requested_filters=requested,
        address=address,
        verification_token=token or None,
        expires_in=expires_in,
        creation_time=now,
        expiration_time=now + expires_in,
    )
    state.subscriptions[sub.id] = sub
    return JSONResponse(render(state, sub))


@rest_endpoint("Light")
async def list_subscriptions(request: Request, caller: Caller) -> Response:
    state = state_of(request)
    records = [render(state, s) for s in state.live_subscriptions(caller.client_id, caller.extension.id)]
    return JSONResponse({"uri": f"{state.config.public_url}{BASE}", "records": records})


@rest_endpoint("Light")
async def get_one(request: Request, caller: Caller) -> Response:
    state = state_of(request)
    return JSONResponse(render(state, _owned(state, caller, request.path_params["sub_id"])))


def _renew(state: EmulatorState, sub: Subscription) -> None:
    sub.expiration_time = state.clock.now() + sub.expires_in
    sub.last_reminder_at = None


@rest_endpoint("Light")
async def renew(request: Request, caller: Caller) -> Response:
    state = state_of(request)
    sub = _owned(state, caller, request.path_params["sub_id"])
    _renew(state, sub)
    return JSONResponse(render(state, sub))


@rest_endpoint("Medium")
async def update(request: Request, caller: Caller) -> Response:
    """Any PUT also renews; the address cannot change (ringcentral.md §2)."""
    state = state_of(request)
    sub = _owned(state, caller, request.path_params["sub_id"])
    data = await json_object(request, required=False)
    mode = data.get("deliveryMode")
    if isinstance(mode, dict) and mode.get("address", sub.address) != sub.address:
        raise invalid_parameter("deliveryMode.address")
    if "eventFilters" in data:
        requested = _filters(data)
        sub.requested_filters = requested
        sub.event_filters = [expand_filter(f, sub.account_id, sub.extension_id, sub.id) for f in requested]
    sub.expires_in = _expires_in(data, sub.expires_in)
    _renew(state, sub)
    return JSONResponse(render(state, sub))


@rest_endpoint("Medium")
async def delete(request: Request, caller: Caller) -> Response:
    state = state_of(request)
    sub = _owned(state, caller, request.path_params["sub_id"])
    del state.subscriptions[sub.id]
    return Response(status_code=204)


routes = [
    Route(BASE, create, methods=["POST"]),
    Route(BASE, list_subscriptions, methods=["GET"]),
    Route(BASE + "/{sub_id}", get_one, methods=["GET"]),
    Route(BASE + "/{sub_id}", update, methods=["PUT"]),
    Route(BASE + "/{sub_id}", delete, methods=["DELETE"]),
    Route(BASE + "/{sub_id}/renew", renew, methods=["POST"]),
]
