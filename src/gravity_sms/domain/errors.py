"""The domain's error tree.

Every failure the API can answer with is one of these; the API maps them to HTTP in one table
(`gravity_sms.api.errors`). Provider (RingCentral) failures carry `retryable`, `retry_after`
and `code`, set in exactly one mapping function in the RingCentral client.
"""

from __future__ import annotations


class GravityError(Exception):
    """Base of every error the gateway raises on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ValidationFailed(GravityError):
    """Bad input: answered 400 with the exact contract message."""


class NotFound(GravityError):
    """The resource does not exist or belongs to another tenant: 404."""


class Conflict(GravityError):
    """The request conflicts with stored state: 409."""


class Unauthenticated(GravityError):
    """No or bad credentials: 401."""


class Forbidden(GravityError):
    """Authenticated but not allowed: 403."""


class TooManyRequests(GravityError):
    """Rate limited: 429 with `Retry-After`."""

    def __init__(self, message: str = "Too many requests", retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = max(1, int(retry_after))


class PayloadTooLarge(GravityError):
    """Request body over the limit: 413."""


class ServiceUnavailable(GravityError):
    """A dependency is down: 503."""


class ProviderError(GravityError):
    """A failure talking to RingCentral.

    `retryable`: a later identical call may succeed (connection errors, timeouts, 5xx, 429).
    `retry_after`: seconds the provider asked us to wait (429 `Retry-After`), if any.
    `code`: RingCentral's `errorCode` (e.g. `MSG-245`, `CMN-301`, `OAU-128`) or a local one
    (`connect-error`, `timeout`).
    `status`: the HTTP status, or None when no answer came.
    """

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status: int | None = None,
        retryable: bool = False,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.status = status
        self.retryable = retryable
        self.retry_after = retry_after

    def __str__(self) -> str:
        return f"{self.code}: {self.message}" if self.code else self.message


class AuthExpired(ProviderError):
    """The access token was refused as expired or unknown (OAU-128 / OAU-213); refresh once and repeat."""


class RefreshFailed(ProviderError):
    """The access token could not be refreshed (a transient failure, or a refresh backing off
    after one): the call it was for never reached RingCentral, so nothing is in doubt."""


class ConnectionRevoked(ProviderError):
    """The refresh token was refused (invalid_grant): the extension is disconnected, never retried."""
