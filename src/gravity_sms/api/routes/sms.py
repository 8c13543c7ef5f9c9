"""`POST /v1/sms/send` (api.md §5): validate, store `queued` durably, answer 202.

The hot path of the gateway (quality.md B1): no schema library, one JSON parse, the domain's
validation, and one await on the group-commit writer — the 202 goes out only after the commit
that holds the message. `Idempotency-Key` repeats answer the original 202 (marked with
`Idempotent-Replayed: true`).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gravity_sms.api.auth import authenticated
from gravity_sms.api.deps import gateway as _gw
from gravity_sms.api.json import json_response, read_json
from gravity_sms.domain.models import AuthContext


async def send_sms(request: Request, ctx: AuthContext) -> Response:
    body = await read_json(request)
    service = _gw(request).outbound
    assert service is not None, "outbound service not wired"
    result = await service.send(ctx, body, request.headers.get("idempotency-key"))
    headers = {"Idempotent-Replayed": "true"} if result.replayed else None
    return json_response({"messageId": result.message_id, "status": "queued"}, 202, headers)


routes = [Route("/v1/sms/send", authenticated(send_sms), methods=["POST"])]
