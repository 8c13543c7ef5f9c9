"""The one exception-to-response table: every failure answers `{"error": "<message>"}`."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from gravity_sms.api.json import json_response
from gravity_sms.domain.errors import (
    Conflict,
    Forbidden,
    GravityError,
    NotFound,
    PayloadTooLarge,
    ServiceUnavailable,
    TooManyRequests,
    Unauthenticated,
    ValidationFailed,
)

STATUS_BY_ERROR: tuple[tuple[type[GravityError], int], ...] = (
    (ValidationFailed, 400),
    (Unauthenticated, 401),
    (Forbidden, 403),
    (NotFound, 404),
    (Conflict, 409),
    (PayloadTooLarge, 413),
    (TooManyRequests, 429),
    (ServiceUnavailable, 503),
)

HTTP_MESSAGES = {404: "Not found", 405: "Method not allowed", 413: "Payload too large"}


def error_response(message: str, status: int, headers: dict[str, str] | None = None) -> Response:
    return json_response({"error": message}, status_code=status, headers=headers)


def response_for(exc: GravityError, request: Request | None = None) -> Response:
    status = 500
    for kind, code in STATUS_BY_ERROR:
        if isinstance(exc, kind):
            status = code
            break
    headers: dict[str, str] = {}
    if request is not None:
        headers.update(getattr(request.state, "rate_headers", None) or {})
    if isinstance(exc, TooManyRequests):
        headers["Retry-After"] = str(exc.retry_after)
    if status == 500:
        return error_response("Internal server error", 500)
    return error_response(exc.message, status, headers or None)


async def gravity_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, GravityError)
    return response_for(exc, request)


async def http_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    message = HTTP_MESSAGES.get(exc.status_code) or (exc.detail if isinstance(exc.detail, str) else "Error")
    return error_response(message, exc.status_code, dict(exc.headers) if exc.headers else None)


EXCEPTION_HANDLERS = {GravityError: gravity_error_handler, HTTPException: http_error_handler}
