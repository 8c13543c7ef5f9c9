"""RingCentral's two error shapes (REST and OAuth) and the exception that carries them.

Owns the wire form of errors; decides no policy about when they happen.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse, Response


class ApiError(Exception):
    """An answer that ends a request early; rendered by `to_response`."""

    def __init__(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        super().__init__(f"{status} {body}")
        self.status = status
        self.body = body
        self.headers = dict(headers or {})

    def to_response(self) -> Response:
        return JSONResponse(self.body, status_code=self.status, headers=self.headers)


def rest_error(
    status: int,
    code: str,
    message: str,
    parameter_name: str | None = None,
    headers: dict[str, str] | None = None,
) -> ApiError:
    """ringcentral.md §7: top-level errorCode/message plus the errors[] form."""
    item: dict[str, Any] = {"errorCode": code, "message": message}
    if parameter_name is not None:
        item["parameterName"] = parameter_name
    return ApiError(status, {"errorCode": code, "message": message, "errors": [item]}, headers)


def oauth_error(status: int, error: str, description: str, code: str) -> ApiError:
    """ringcentral.md §1: `error`, `error_description` and errors[] with an OAU code."""
    body = {
        "error": error,
        "error_description": description,
        "errors": [{"errorCode": code, "message": description}],
    }
    return ApiError(status, body)


def invalid_parameter(name: str, value: str | None = None) -> ApiError:
    """CMN-101, the generic bad-parameter answer."""
    message = f"Parameter [{name}] value is invalid"
    if value is not None:
        message = f"Parameter [{name}] value [{value}] is invalid"
    return rest_error(400, "CMN-101", message, name)


def not_found(parameter: str) -> ApiError:
    """CMN-102, as error__subscription_not_found.json."""
    return rest_error(404, "CMN-102", f"Resource for parameter [{parameter}] is not found", parameter)


def rate_limited(code: str = "CMN-301", headers: dict[str, str] | None = None) -> ApiError:
    """429 like error__rate_limited.json (MSG-305 on the SMS call, ringcentral.md §6)."""
    return rest_error(429, code, "Request rate exceeded", headers=headers)
