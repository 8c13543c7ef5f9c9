"""JSON in and out with orjson; the contract's body rules (object bodies, `Invalid JSON body`)."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from gravity_sms.domain.errors import ValidationFailed


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def json_response(content: Any, status_code: int = 200, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(content, status_code=status_code, headers=headers)


def parse_json_object(body: bytes) -> dict[str, Any]:
    """Raw bytes as a JSON object; anything else is `400 Invalid JSON body` (the pure-ASGI hot
    routes call this directly, the Starlette routes through `read_json`)."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise ValidationFailed("Invalid JSON body") from None
    if not isinstance(data, dict):
        raise ValidationFailed("Invalid JSON body")
    return data


async def read_json(request: Request) -> dict[str, Any]:
    """The request body as a JSON object; anything else is `400 Invalid JSON body`."""
    return parse_json_object(await request.body())


async def read_optional_json(request: Request) -> dict[str, Any]:
    """Like read_json, but an empty body is `{}` (POST routes whose fields are all optional)."""
    body = await request.body()
    if not body.strip():
        return {}
    return await read_json(request)
