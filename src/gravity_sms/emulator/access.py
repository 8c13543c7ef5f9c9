"""The gate in front of every REST endpoint: bearer authentication, rate limit, `~` ids.

Owns `rest_endpoint`, which turns a handler taking the authenticated `Caller` into a
Starlette endpoint whose every answer (errors included) carries the rate-limit headers.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from gravity_sms.emulator.errors import ApiError, invalid_parameter, not_found, rate_limited, rest_error
from gravity_sms.emulator.state import EmulatorState, Extension, Session, state_of


@dataclass(frozen=True)
class Caller:
    session: Session
    extension: Extension

    @property
    def client_id(self) -> str:
        return self.session.client_id

    @property
    def account_id(self) -> str:
        return self.extension.account_id


Handler = Callable[[Request, Caller], Awaitable[Response]]
Endpoint = Callable[[Request], Awaitable[Response]]


def authenticate(state: EmulatorState, request: Request) -> Caller:
    """ringcentral.md §1: expired → 401 OAU-128, unknown → 401 OAU-213."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if not header:
        raise rest_error(401, "AGW-401", "Authorization header is not specified")
    if scheme.lower() != "bearer" or not token.strip():
        raise rest_error(401, "AGW-401", "Authorization header is invalid")
    session_id = state.access_index.get(token.strip())
    session = state.sessions.get(session_id) if session_id else None
    if session is None or session.ended:
        raise rest_error(401, "OAU-213", "Token not found")
    if state.clock.now() >= session.access_expires_at:
        raise rest_error(401, "OAU-128", "Access token expired")
    extension = state.extensions.get(session.extension_id)
    if extension is None:
        raise rest_error(401, "OAU-213", "Token not found")
    return Caller(session, extension)


def _check_path_ids(request: Request, caller: Caller) -> None:
    account = request.path_params.get("account_id")
    if account is not None and account not in ("~", caller.account_id):
        raise not_found("accountId")
    extension = request.path_params.get("extension_id")
    if extension is not None and extension not in ("~", caller.extension.id):
        raise not_found("extensionId")


def rest_endpoint(group: str, limited_code: str = "CMN-301") -> Callable[[Handler], Endpoint]:
    """Wraps a handler; `limited_code` is the 429 error code (MSG-305 on the SMS call)."""

    def wrap(handler: Handler) -> Endpoint:
        async def endpoint(request: Request) -> Response:
            state = state_of(request)
            headers = state.limiter.describe(group)
            try:
                caller = authenticate(state, request)
                verdict = state.limiter.check(caller.extension.id, caller.client_id, group)
                headers = verdict.headers
                if not verdict.allowed:
                    raise rate_limited(limited_code)
                _check_path_ids(request, caller)
                response = await handler(request, caller)
            except ApiError as err:
                response = err.to_response()
            response.headers.update(headers)
            return response

        endpoint.__name__ = handler.__name__
        return endpoint

    return wrap


async def json_object(request: Request, *, required: bool = True) -> dict[str, Any]:
    body = await request.body()
    if not body.strip() and not required:
        return {}
    try:
        data = json.loads(body)
    except ValueError:
        raise invalid_parameter("body") from None
    if not isinstance(data, dict):
        raise invalid_parameter("body")
    return data
