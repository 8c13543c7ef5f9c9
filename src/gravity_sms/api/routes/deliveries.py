"""`POST /v1/apps/{appId}/test-webhook` and `GET /v1/apps/{appId}/webhook-deliveries` (api.md §4)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gravity_sms.api.auth import authenticated
from gravity_sms.api.deps import gateway as _gw
from gravity_sms.api.json import json_response
from gravity_sms.domain.errors import ValidationFailed
from gravity_sms.domain.models import AuthContext

MAX_LIMIT = 100


def _int(request: Request, name: str, default: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not raw.strip().isdigit() or not 1 <= int(raw) <= high:
        raise ValidationFailed(f"{name} is invalid")
    return int(raw)


async def test_webhook(request: Request, ctx: AuthContext) -> Response:
    gw = _gw(request)
    app = await gw.apps.get(ctx, request.path_params["app_id"])
    if not app.webhook_url:
        raise ValidationFailed("App has no webhookUrl configured")
    assert gw.dispatcher is not None, "dispatcher not wired"
    delivery = await gw.dispatcher.send_test(app)
    return json_response(
        {
            "success": delivery.success,
            "statusCode": delivery.status_code,
            "body": delivery.body,
            "error": delivery.error,
            "durationMs": delivery.duration_ms,
        }
    )


async def list_deliveries(request: Request, ctx: AuthContext) -> Response:
    gw = _gw(request)
    app = await gw.apps.get(ctx, request.path_params["app_id"])
    page = _int(request, "page", 1, 1_000_000)
    limit = _int(request, "limit", 20, MAX_LIMIT)
    items, total = await gw.store.deliveries.for_app(app.id, page, limit)
    return json_response({"deliveries": [d.public() for d in items], "total": total, "page": page, "limit": limit})


routes = [
    Route("/v1/apps/{app_id}/test-webhook", authenticated(test_webhook), methods=["POST"]),
    Route("/v1/apps/{app_id}/webhook-deliveries", authenticated(list_deliveries), methods=["GET"]),
]
