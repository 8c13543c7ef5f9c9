"""`GET /openapi.json`: the contract as OpenAPI 3.1 (no auth). The document lives in `api.openapi`."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gravity_sms.api.openapi import openapi_bytes


async def openapi_json(request: Request) -> Response:
    return Response(openapi_bytes(), media_type="application/json")


routes = [Route("/openapi.json", openapi_json, methods=["GET"])]
