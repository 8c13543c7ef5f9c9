"""The control API under /_emulator/: seed, inspect, inject, move time, break things.

Owns these routes only; each acts through the modules that own the concept. It has no
authentication: never expose an emulator beyond a test network.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gravity_sms.emulator import sessions
from gravity_sms.emulator.access import json_object
from gravity_sms.emulator.clock import iso
from gravity_sms.emulator.errors import ApiError, invalid_parameter, not_found
from gravity_sms.emulator.faults import ROUTE_KINDS
from gravity_sms.emulator.inbound import inject
from gravity_sms.emulator.seed import apply_seed
from gravity_sms.emulator.sms import sent_log
from gravity_sms.emulator.state import EmulatorState, state_of
from gravity_sms.emulator.subscriptions import render as render_subscription
from gravity_sms.emulator.ticker import run_pending

PREFIX = "/_emulator"
Endpoint = Callable[[Request], Awaitable[Response]]


def control(handler: Callable[[Request, EmulatorState], Awaitable[Any]]) -> Endpoint:
    async def endpoint(request: Request) -> Response:
        try:
            result = await handler(request, state_of(request))
        except ApiError as err:
            return err.to_response()
        return result if isinstance(result, Response) else JSONResponse(result)

    endpoint.__name__ = handler.__name__
    return endpoint


def reset_state(state: EmulatorState) -> None:
    """Back to the configured seed: directory, sessions, subscriptions, logs, clock, faults."""
    state.clear()
    if state.config.seed:
        apply_seed(state, state.config.seed)


@control
async def reset(request: Request, state: EmulatorState) -> dict[str, Any]:
    reset_state(state)
    return {"ok": True}


@control
async def seed(request: Request, state: EmulatorState) -> dict[str, Any]:
    return {"added": apply_seed(state, await json_object(request))}


def _snapshot(state: EmulatorState) -> dict[str, Any]:
    now = state.clock.now()
    accounts = [
        {
            "id": account.id,
            "extensions": [
                {
                    "id": ext.id,
                    "extensionNumber": ext.extension_number,
                    "name": ext.name,
                    "phoneNumbers": [
                        {"phoneNumber": n.phone_number, "features": n.features} for n in ext.phone_numbers
                    ],
                }
                for ext in (state.extensions[e] for e in account.extension_ids)
            ],
        }
        for account in state.accounts.values()
    ]
    subscriptions = []
    for sub in state.subscriptions.values():
        item = render_subscription(state, sub)
        item |= {
            "extensionId": sub.extension_id,
            "clientId": sub.client_id,
            "expired": sub.expired(now),
            "consecutiveFailures": sub.consecutive_failures,
            "hasVerificationToken": sub.verification_token is not None,
            "address": sub.address,
        }
        subscriptions.append(item)
    live = [s for s in state.sessions.values() if not s.ended]
    return {
        "now": iso(now),
        "clockOffsetSeconds": state.clock.offset,
        "clients": [{"clientId": c.client_id, "redirectUris": c.redirect_uris} for c in state.clients.values()],
        "accounts": accounts,
        "subscriptions": subscriptions,
        "tokens": {
            "sessions": len(live),
            "liveAccessTokens": sum(1 for s in live if s.access_expires_at > now),
            "liveRefreshTokens": sum(1 for s in live if s.refresh_token and s.refresh_expires_at > now),
            "byExtension": {e: sum(1 for s in live if s.extension_id == e) for e in {s.extension_id for s in live}},
        },
        "messages": {
            "inbound": sum(1 for m in state.messages.values() if m.direction == "Inbound"),
            "outbound": sum(1 for m in state.messages.values() if m.direction == "Outbound"),
        },
        "faults": state.faults.public(),
    }


@control
async def snapshot(request: Request, state: EmulatorState) -> dict[str, Any]:
    return _snapshot(state)


@control
async def inbound(request: Request, state: EmulatorState) -> dict[str, Any]:
    deliver_now = request.query_params.get("deliver", "true").lower() not in ("false", "0", "no")
    return await inject(state, await json_object(request), deliver_now=deliver_now)


@control
async def requests_log(request: Request, state: EmulatorState) -> Any:
    if request.method == "DELETE":
        state.requests.clear()
        return {"ok": True}
    prefix = request.query_params.get("path", "")
    since = int(request.query_params.get("since", "0"))
    method = request.query_params.get("method")
    return {
        "requests": [
            r
            for r in state.requests
            if r["path"].startswith(prefix) and r["seq"] > since and (method is None or r["method"] == method.upper())
        ]
    }


@control
async def sms_log(request: Request, state: EmulatorState) -> dict[str, Any]:
    return {"sms": sent_log(state)}


@control
async def deliveries_log(request: Request, state: EmulatorState) -> dict[str, Any]:
    items = [asdict(d) | {"at": iso(d.at)} for d in state.deliveries]
    return {"deliveries": [{"subscriptionId": d.pop("subscription_id"), **d} for d in items]}


@control
async def clock(request: Request, state: EmulatorState) -> dict[str, Any]:
    pending: dict[str, Any] | None = None
    if request.method == "POST":
        data = await json_object(request)
        seconds = data.get("seconds")
        if not isinstance(seconds, int | float) or isinstance(seconds, bool) or seconds < 0:
            raise invalid_parameter("seconds")
        state.clock.advance(float(seconds))
        pending = await run_pending(state)
    return {"now": iso(state.clock.now()), "offsetSeconds": state.clock.offset, "pending": pending}


@control
async def next_login(request: Request, state: EmulatorState) -> dict[str, Any]:
    data = await json_object(request)
    ext = state.find_extension_by_hint(str(data.get("extensionId", "")))
    if ext is None:
        raise not_found("extensionId")
    state.next_login = ext.id
    return {"ok": True, "extensionId": ext.id}


@control
async def deny_next(request: Request, state: EmulatorState) -> dict[str, Any]:
    state.deny_next = True
    return {"ok": True}


@control
async def expire_tokens(request: Request, state: EmulatorState) -> dict[str, Any]:
    data = await json_object(request, required=False)
    ext = data.get("extensionId")
    return {"expired": sessions.expire_access_tokens(state, None if ext is None else str(ext))}


@control
async def revoke_refresh(request: Request, state: EmulatorState) -> dict[str, Any]:
    data = await json_object(request, required=False)
    return {"revoked": _revoke_refresh(state, data)}


def _revoke_refresh(state: EmulatorState, spec: Any) -> int:
    spec = spec if isinstance(spec, dict) else {}
    ext = spec.get("extensionId")
    return sessions.revoke_refresh_tokens(state, spec.get("token"), None if ext is None else str(ext))


def _blacklist(state: EmulatorState, sub_id: str, reason: str | None) -> None:
    sub = state.subscriptions.get(sub_id)
    if sub is None:
        raise not_found("subscriptionId")
    state.blacklist(sub, reason or "Webhook responses with code: [503], reason: [Service Unavailable]")


@control
async def blacklist(request: Request, state: EmulatorState) -> dict[str, Any]:
    data = await json_object(request, required=False)
    _blacklist(state, request.path_params["sub_id"], data.get("reason"))
    return {"ok": True}


@control
async def vanish(request: Request, state: EmulatorState) -> dict[str, Any]:
    """Deletes a subscription without telling anyone, as if RingCentral lost it."""
    if state.subscriptions.pop(request.path_params["sub_id"], None) is None:
        raise not_found("subscriptionId")
    return {"ok": True}


@control
async def deliver_pending(request: Request, state: EmulatorState) -> dict[str, Any]:
    return await run_pending(state)


def _specs(value: Any, name: str) -> list[dict[str, Any]]:
    items = value if isinstance(value, list) else [value]
    if not all(isinstance(i, dict) for i in items):
        raise invalid_parameter(name)
    return items


def _id_of(value: Any, name: str) -> tuple[str, str | None]:
    if isinstance(value, str):
        return value, None
    if isinstance(value, dict) and isinstance(value.get("id"), str):
        return value["id"], value.get("reason")
    raise invalid_parameter(name)


@control
async def faults(request: Request, state: EmulatorState) -> dict[str, Any]:
    if request.method == "DELETE":
        state.faults.clear()
    elif request.method == "POST":
        data = await json_object(request)
        known = {*ROUTE_KINDS, "deliveryFailure", "expireAccessTokens", "revokeRefreshToken"}
        known |= {"blacklistSubscription", "deleteSubscription", "seed"}
        unknown = set(data) - known
        if unknown:
            raise invalid_parameter(sorted(unknown)[0])
        if "seed" in data:
            state.faults.reseed(int(data["seed"]))
        for kind in ROUTE_KINDS:
            for spec in _specs(data[kind], kind) if kind in data else []:
                state.faults.add_route(kind, spec)
        for spec in _specs(data["deliveryFailure"], "deliveryFailure") if "deliveryFailure" in data else []:
            state.faults.add_delivery_failure(spec)
        if data.get("expireAccessTokens"):
            spec = data["expireAccessTokens"]
            ext = spec.get("extensionId") if isinstance(spec, dict) else None
            sessions.expire_access_tokens(state, None if ext is None else str(ext))
        if data.get("revokeRefreshToken"):
            _revoke_refresh(state, data["revokeRefreshToken"])
        if "blacklistSubscription" in data:
            _blacklist(state, *_id_of(data["blacklistSubscription"], "blacklistSubscription"))
        if "deleteSubscription" in data:
            sub_id, _ = _id_of(data["deleteSubscription"], "deleteSubscription")
            if state.subscriptions.pop(sub_id, None) is None:
                raise not_found("subscriptionId")
    return state.faults.public()


routes = [
    Route(f"{PREFIX}/reset", reset, methods=["POST"]),
    Route(f"{PREFIX}/seed", seed, methods=["POST"]),
    Route(f"{PREFIX}/state", snapshot, methods=["GET"]),
    Route(f"{PREFIX}/inbound", inbound, methods=["POST"]),
    Route(f"{PREFIX}/requests", requests_log, methods=["GET", "DELETE"]),
    Route(f"{PREFIX}/sms", sms_log, methods=["GET"]),
    Route(f"{PREFIX}/deliveries", deliveries_log, methods=["GET"]),
    Route(f"{PREFIX}/clock", clock, methods=["GET"]),
    Route(f"{PREFIX}/clock/advance", clock, methods=["POST"]),
    Route(f"{PREFIX}/oauth/next-login", next_login, methods=["POST"]),
    Route(f"{PREFIX}/oauth/deny-next", deny_next, methods=["POST"]),
    Route(f"{PREFIX}/tokens/expire", expire_tokens, methods=["POST"]),
    Route(f"{PREFIX}/tokens/revoke-refresh", revoke_refresh, methods=["POST"]),
    Route(f"{PREFIX}/subscriptions/{{sub_id}}/blacklist", blacklist, methods=["POST"]),
    Route(f"{PREFIX}/subscriptions/{{sub_id}}", vanish, methods=["DELETE"]),
    Route(f"{PREFIX}/deliver-pending", deliver_pending, methods=["POST"]),
    Route(f"{PREFIX}/faults", faults, methods=["GET", "POST", "DELETE"]),
]
