"""The one mapping from RingCentral answers and transport failures to domain errors.

Every failure the client raises is built here, so `retryable`, `retry_after` and `code` mean the
same thing everywhere (style.md "Errors"). RingCentral error bodies come in two shapes
(ringcentral.md §7 and §1): REST `{"errorCode", "message", "errors": [...]}` and OAuth
`{"error", "error_description", "errors": [...]}`; both are read, top level first.
This module must not log and must never put a token into a message.
"""

from __future__ import annotations

import email.utils
from datetime import UTC, datetime
from typing import Any

import httpx

from gravity_sms.domain.errors import AuthExpired, ConnectionRevoked, ProviderError

# ringcentral.md §6: "usually Retry-After (else wait at least 30 s)".
DEFAULT_RETRY_AFTER = 30.0
# ringcentral.md §1: expired (OAU-128) or unknown (OAU-213) access token on a REST call.
AUTH_EXPIRED_CODES = frozenset({"OAU-128", "OAU-213"})


def error_fields(body: Any) -> tuple[str | None, str | None, str | None]:
    """(errorCode, message, OAuth `error`) from either body form; None where absent."""
    if not isinstance(body, dict):
        return None, None, None
    code = body.get("errorCode")
    message = body.get("message")
    oauth_error = body.get("error")
    if message is None and isinstance(body.get("error_description"), str):
        message = body["error_description"]
    errors = body.get("errors")
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        first = errors[0]
        code = code or first.get("errorCode")
        message = message or first.get("message")
    return (
        str(code) if code is not None else None,
        str(message) if message is not None else None,
        str(oauth_error) if isinstance(oauth_error, str) else None,
    )


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """`Retry-After` as delta-seconds or an HTTP date (RFC 9110 §10.2.3); None when unusable."""
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def map_error(
    *,
    status: int | None = None,
    body: Any = None,
    headers: httpx.Headers | dict[str, str] | None = None,
    exc: BaseException | None = None,
    refresh: bool = False,
) -> ProviderError:
    """The domain error for one failed call.

    `exc` is a transport failure (no answer); otherwise `status`/`body`/`headers` describe the
    answer. `refresh=True` marks a refresh-token grant, where `invalid_grant` means the
    connection is gone for good (ringcentral.md §1: refresh tokens are single use).
    """
    if exc is not None:
        if isinstance(exc, httpx.TimeoutException):
            return ProviderError("RingCentral did not answer in time", code="timeout", retryable=True)
        return ProviderError(
            f"Could not reach RingCentral ({type(exc).__name__})", code="connect-error", retryable=True
        )
    code, message, oauth_error = error_fields(body)
    status = status or 0
    retry_after = parse_retry_after((headers or {}).get("retry-after") if headers is not None else None)
    text = message or f"RingCentral answered HTTP {status}"
    if refresh and oauth_error == "invalid_grant":
        return ConnectionRevoked(text, code=code or oauth_error, status=status, retryable=False)
    if status == 401 and (code in AUTH_EXPIRED_CODES or (code is None and oauth_error is None)):
        # Repeating after a refresh may succeed: retryable for callers that do not refresh.
        return AuthExpired(text, code=code or "OAU-128", status=status, retryable=True)
    if status == 429:
        return ProviderError(
            text,
            code=code or "CMN-301",
            status=status,
            retryable=True,
            retry_after=DEFAULT_RETRY_AFTER if retry_after is None else retry_after,
        )
    if status >= 500 or status in (408, 0):
        return ProviderError(text, code=code, status=status, retryable=True, retry_after=retry_after)
    return ProviderError(text, code=code or oauth_error, status=status, retryable=False)
