"""`/health` (no work), `/ready` (database and Redis answer), `/metrics` (Prometheus)."""

from __future__ import annotations

import asyncio

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gravity_sms.api.json import json_response
from gravity_sms.container import Gateway

_HEALTH = b'{"status":"ok"}'


async def health(request: Request) -> Response:
    return Response(_HEALTH, media_type="application/json")


async def ready(request: Request) -> Response:
    gw: Gateway = request.app.state.gateway
    try:
        await asyncio.wait_for(gw.store.ping(), timeout=2.0)
    except Exception:
        return json_response({"status": "unavailable", "error": "database unavailable"}, 503)
    if gw.redis is not None:
        try:
            await asyncio.wait_for(gw.redis.ping(), timeout=2.0)
        except Exception:
            return json_response({"status": "unavailable", "error": "redis unavailable"}, 503)
    return json_response({"status": "ready"})


async def metrics(request: Request) -> Response:
    gw: Gateway = request.app.state.gateway
    if not gw.settings.metrics_enabled:
        return json_response({"error": "Not found"}, 404)
    return Response(generate_latest(gw.metrics.registry), media_type=CONTENT_TYPE_LATEST)


routes = [
    Route("/health", health, methods=["GET"]),
    Route("/ready", ready, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
]
