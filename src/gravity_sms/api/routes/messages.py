"""Messages API (api.md §5): `GET /v1/sms/messages` and `GET /v1/sms/status/{messageId}`.

(`POST /v1/sms/send` lives in `sms.py`.)
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gravity_sms.api.auth import authenticated
from gravity_sms.api.deps import gateway as _gw
from gravity_sms.api.json import json_response
from gravity_sms.domain.history import MessageHistory
from gravity_sms.domain.models import AuthContext


def _history(request: Request) -> MessageHistory:
    service = _gw(request).history
    assert service is not None, "message history not wired"
    return service


async def list_messages(request: Request, ctx: AuthContext) -> Response:
    page = await _history(request).search(ctx, request.query_params)
    return json_response(
        {"messages": [m.public() for m in page.items], "total": page.total, "page": page.page, "limit": page.limit}
    )


async def message_status(request: Request, ctx: AuthContext) -> Response:
    msg = await _history(request).status(ctx, request.path_params["message_id"])
    return json_response(msg.public())


routes = [
    Route("/v1/sms/messages", authenticated(list_messages), methods=["GET"]),
    Route("/v1/sms/status/{message_id}", authenticated(message_status), methods=["GET"]),
]
