"""`POST /v1/ws/token` (api.md §7): a single-use WebSocket token valid for 60 s on any node.

The token is stored only as its SHA-256 hash (through the `TokenStore` port: in-process, or Redis
in a cluster) with the creating key's app, tenant and role; the plaintext is returned once.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gravity_sms.api.auth import authenticated
from gravity_sms.api.deps import gateway as _gw
from gravity_sms.api.json import json_response
from gravity_sms.domain.ids import new_ws_token
from gravity_sms.domain.models import AuthContext

WS_TOKEN_TTL = 60


async def create_ws_token(request: Request, ctx: AuthContext) -> Response:
    gw = _gw(request)
    token = new_ws_token()
    value = {"appId": ctx.app_id, "tenantId": ctx.tenant_id, "role": ctx.role}
    await gw.tokens.put(gw.box.hash(token), value, WS_TOKEN_TTL)
    return json_response({"token": token, "expiresIn": WS_TOKEN_TTL})


routes = [Route("/v1/ws/token", authenticated(create_ws_token), methods=["POST"])]
