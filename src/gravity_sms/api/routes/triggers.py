"""Power Automate REST-hook triggers (api.md §8): subscribe and unsubscribe."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gravity_sms.api.auth import authenticated
from gravity_sms.api.deps import gateway as _gw
from gravity_sms.api.json import json_response, read_json
from gravity_sms.domain.models import AuthContext
from gravity_sms.domain.triggers import TriggerService


def _triggers(request: Request) -> TriggerService:
    service = _gw(request).triggers
    assert service is not None, "trigger service not wired"
    return service


PATH = "/v1/triggers/sms-received/subscribe"


async def subscribe(request: Request, ctx: AuthContext) -> Response:
    body = await read_json(request)
    trigger = await _triggers(request).subscribe(ctx, body)
    return json_response({"id": trigger.id}, 201, headers={"Location": f"{PATH}/{trigger.id}"})


async def unsubscribe(request: Request, ctx: AuthContext) -> Response:
    await _triggers(request).unsubscribe(ctx, request.path_params["trigger_id"])
    return json_response({"ok": True})


routes = [
    Route(PATH, authenticated(subscribe), methods=["POST"]),
    Route(PATH + "/{trigger_id}", authenticated(unsubscribe), methods=["DELETE"]),
]
