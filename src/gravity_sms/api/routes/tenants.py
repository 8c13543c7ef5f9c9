"""Tenants API (admin only, api.md §3)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gravity_sms.api.auth import authenticated
from gravity_sms.api.deps import gateway as _gw
from gravity_sms.api.json import json_response, read_json
from gravity_sms.domain.models import AuthContext


async def create_tenant(request: Request, ctx: AuthContext) -> Response:
    body = await read_json(request)
    tenant = await _gw(request).tenants.create(body.get("name"))
    return json_response(tenant.public(), 201)


async def list_tenants(request: Request, ctx: AuthContext) -> Response:
    tenants = await _gw(request).tenants.list_tenants()
    return json_response({"tenants": [t.public() for t in tenants]})


async def get_tenant(request: Request, ctx: AuthContext) -> Response:
    tenant = await _gw(request).tenants.get(request.path_params["tenant_id"])
    return json_response(tenant.public())


async def update_tenant(request: Request, ctx: AuthContext) -> Response:
    body = await read_json(request)
    tenant = await _gw(request).tenants.update(request.path_params["tenant_id"], body)
    return json_response(tenant.public())


routes = [
    Route("/v1/tenants", authenticated(create_tenant, admin=True), methods=["POST"]),
    Route("/v1/tenants", authenticated(list_tenants, admin=True), methods=["GET"]),
    Route("/v1/tenants/{tenant_id}", authenticated(get_tenant, admin=True), methods=["GET"]),
    Route("/v1/tenants/{tenant_id}", authenticated(update_tenant, admin=True), methods=["PUT"]),
]
