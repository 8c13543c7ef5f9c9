"""Apps API (api.md §4): register, list, get, update, delete, rotate key and webhook secret."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gravity_sms.api.auth import authenticated
from gravity_sms.api.deps import gateway as _gw
from gravity_sms.api.json import json_response, read_json
from gravity_sms.domain.models import AuthContext


async def register_app(request: Request, ctx: AuthContext) -> Response:
    body = await read_json(request)
    created = await _gw(request).apps.register(ctx, body)
    return json_response(created, 201)


async def list_apps(request: Request, ctx: AuthContext) -> Response:
    apps = await _gw(request).apps.list_apps(ctx, request.query_params.get("tenantId"))
    return json_response({"apps": [a.public() for a in apps]})


async def get_app(request: Request, ctx: AuthContext) -> Response:
    app = await _gw(request).apps.get(ctx, request.path_params["app_id"])
    return json_response(app.public())


async def update_app(request: Request, ctx: AuthContext) -> Response:
    body = await read_json(request)
    app = await _gw(request).apps.update(ctx, request.path_params["app_id"], body)
    return json_response(app.public())


async def delete_app(request: Request, ctx: AuthContext) -> Response:
    await _gw(request).apps.delete(ctx, request.path_params["app_id"])
    return json_response({"ok": True})


async def rotate_key(request: Request, ctx: AuthContext) -> Response:
    return json_response(await _gw(request).apps.rotate_key(ctx, request.path_params["app_id"]))


async def rotate_webhook_secret(request: Request, ctx: AuthContext) -> Response:
    return json_response(await _gw(request).apps.rotate_webhook_secret(ctx, request.path_params["app_id"]))


routes = [
    Route("/v1/apps/register", authenticated(register_app), methods=["POST"]),
    Route("/v1/apps", authenticated(list_apps), methods=["GET"]),
    Route("/v1/apps/{app_id}", authenticated(get_app), methods=["GET"]),
    Route("/v1/apps/{app_id}", authenticated(update_app), methods=["PUT"]),
    Route("/v1/apps/{app_id}", authenticated(delete_app), methods=["DELETE"]),
    Route("/v1/apps/{app_id}/rotate-key", authenticated(rotate_key), methods=["POST"]),
    Route("/v1/apps/{app_id}/rotate-webhook-secret", authenticated(rotate_webhook_secret), methods=["POST"]),
]
