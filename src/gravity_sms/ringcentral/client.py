"""`RingCentralClient`: the gateway's async HTTP client for RingCentral (ringcentral.md §1-§6).

Owns the HTTP exchange only: one pooled `httpx.AsyncClient` with explicit timeouts, Basic client
authentication on token calls, Bearer tokens on REST calls, parsing into the wire models and one
`ProviderCall` report per call (metrics and pacing). It keeps no tokens: callers pass the access
token in, and token storage, refresh single-flight and retries belong to the domain
(`gravity_sms.domain.connections`). Logs carry operation, status and duration — never a token,
a code or a message text.
"""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import urlencode

import httpx
from pydantic import BaseModel, ValidationError

from gravity_sms.domain.clock import Clock, isoformat_z
from gravity_sms.domain.errors import ProviderError
from gravity_sms.domain.provider import (
    ProviderCall,
    RateInfo,
    RcExtension,
    RcMessage,
    RcPhoneNumber,
    RcSubscription,
    SentSms,
    TokenSet,
)
from gravity_sms.ringcentral.errors import map_error
from gravity_sms.ringcentral.wire import (
    ExtensionInfo,
    MessageList,
    MessageRecord,
    PhoneNumberList,
    SubscriptionInfo,
    TokenAnswer,
)

log = logging.getLogger("gravity.ringcentral")
M = TypeVar("M", bound=BaseModel)

EXT = "/restapi/v1.0/account/~/extension/~"
SUBSCRIPTION = "/restapi/v1.0/subscription"
MAX_PAGES = 50


def parse_rate(headers: httpx.Headers) -> RateInfo | None:
    """`X-Rate-Limit-Group/-Limit/-Remaining/-Window` (ringcentral.md §6); None when absent."""

    def number(name: str) -> int | None:
        value = headers.get(name)
        try:
            return int(value) if value is not None else None
        except ValueError:
            return None

    group = headers.get("x-rate-limit-group")
    limit, remaining, window = (
        number("x-rate-limit-limit"),
        number("x-rate-limit-remaining"),
        number("x-rate-limit-window"),
    )
    if group is None and limit is None and remaining is None and window is None:
        return None
    return RateInfo(group=group, limit=limit, remaining=remaining, window=window)


class RingCentralClient:
    """Implements `gravity_sms.domain.provider.RingCentralApi` over HTTP."""

    def __init__(
        self,
        server_url: str,
        client_id: str,
        client_secret: str,
        *,
        http: httpx.AsyncClient | None = None,
        timeout: float = 10.0,
        on_call: Callable[[ProviderCall], None] | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.server_url = server_url.rstrip("/")
        self.client_id = client_id
        self._basic = "Basic " + base64.b64encode(f"{client_id}:{client_secret}".encode()).decode("ascii")
        self._owns_http = http is None
        self._http = http or httpx.AsyncClient(
            timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
            follow_redirects=False,
            trust_env=False,
        )
        self._timeout = timeout
        self.on_call = on_call
        self._clock = clock

    def _now(self) -> datetime:
        return self._clock.now() if self._clock is not None else datetime.now(UTC)

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    # --- transport ---------------------------------------------------------------------------
    def _report(self, operation: str, status: int | None, rate: RateInfo | None) -> None:
        if self.on_call is not None:
            try:
                self.on_call(ProviderCall(operation=operation, status=status, rate=rate))
            except Exception:
                log.exception("rc.on_call_failed", extra={"fields": {"operation": operation}})

    async def _send(
        self,
        operation: str,
        method: str,
        path: str,
        *,
        token: str | None = None,
        basic: bool = False,
        refresh: bool = False,
        **kwargs: Any,
    ) -> tuple[httpx.Response, RateInfo | None]:
        headers = {"Accept": "application/json"}
        if basic:
            headers["Authorization"] = self._basic
        elif token is not None:
            headers["Authorization"] = f"Bearer {token}"
        started = time.perf_counter()
        try:
            response = await self._http.request(
                method, self.server_url + path, headers=headers, timeout=self._timeout, **kwargs
            )
        except httpx.HTTPError as exc:
            self._report(operation, None, None)
            error = map_error(exc=exc)
            log.warning(
                "rc.call_failed",
                extra={"fields": {"operation": operation, "code": error.code, "ms": _ms(started)}},
            )
            raise error from None
        rate = parse_rate(response.headers)
        self._report(operation, response.status_code, rate)
        if response.is_success:
            log.debug(
                "rc.call",
                extra={"fields": {"operation": operation, "status": response.status_code, "ms": _ms(started)}},
            )
            return response, rate
        error = map_error(status=response.status_code, body=_json(response), headers=response.headers, refresh=refresh)
        log.warning(
            "rc.call_failed",
            extra={
                "fields": {
                    "operation": operation,
                    "status": response.status_code,
                    "code": error.code,
                    "retryable": error.retryable,
                    "ms": _ms(started),
                }
            },
        )
        raise error

    async def _json(
        self, operation: str, model: type[M], method: str, path: str, **kwargs: Any
    ) -> tuple[M, RateInfo | None]:
        response, rate = await self._send(operation, method, path, **kwargs)
        try:
            return model.model_validate(response.json()), rate
        except (ValidationError, ValueError):
            # RingCentral answered with success, so the request may well have taken effect (an
            # SMS accepted): retryable, and the 2xx status tells callers it is in doubt.
            log.warning("rc.bad_answer", extra={"fields": {"operation": operation, "status": response.status_code}})
            raise ProviderError(
                "RingCentral sent an answer the gateway cannot read",
                code="bad-answer",
                status=response.status_code,
                retryable=True,
            ) from None

    # --- OAuth (§1) ----------------------------------------------------------------------------
    def authorize_url(self, *, redirect_uri: str, state: str, code_challenge: str) -> str:
        query = urlencode(
            {
                "response_type": "code",
                "client_id": self.client_id,
                "redirect_uri": redirect_uri,
                "state": state,
                "code_challenge": code_challenge,
                "code_challenge_method": "S256",
            }
        )
        return f"{self.server_url}/restapi/oauth/authorize?{query}"

    async def _token(self, operation: str, form: dict[str, str], *, refresh: bool = False) -> TokenSet:
        # SDKs also put client_id in the form; RingCentral accepts both (ringcentral.md §1).
        answer, _ = await self._json(
            operation,
            TokenAnswer,
            "POST",
            "/restapi/oauth/token",
            basic=True,
            refresh=refresh,
            data=form,
        )
        return answer.to_domain(self._now())

    async def exchange_code(self, *, code: str, redirect_uri: str, code_verifier: str) -> TokenSet:
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": code_verifier,
        }
        return await self._token("oauth.exchange", form)

    async def refresh(self, refresh_token: str) -> TokenSet:
        return await self._token(
            "oauth.refresh", {"grant_type": "refresh_token", "refresh_token": refresh_token}, refresh=True
        )

    async def revoke(self, token: str) -> None:
        await self._send("oauth.revoke", "POST", "/restapi/oauth/revoke", basic=True, data={"token": token})

    # --- identity (§5) -------------------------------------------------------------------------
    async def get_extension(self, access_token: str) -> RcExtension:
        info, _ = await self._json("extension.get", ExtensionInfo, "GET", EXT, token=access_token)
        return info.to_domain()

    async def list_phone_numbers(self, access_token: str) -> list[RcPhoneNumber]:
        numbers: list[RcPhoneNumber] = []
        page = 1
        while page <= MAX_PAGES:
            answer, _ = await self._json(
                "phone_numbers.list",
                PhoneNumberList,
                "GET",
                f"{EXT}/phone-number",
                token=access_token,
                params={"page": page, "perPage": 100},
            )
            numbers.extend(r.to_domain() for r in answer.records)
            total = answer.paging.total_pages if answer.paging else None
            if total is None or page >= total or not answer.records:
                break
            page += 1
        return numbers

    # --- subscriptions (§2) --------------------------------------------------------------------
    async def create_subscription(
        self, access_token: str, *, address: str, verification_token: str, event_filters: list[str], expires_in: int
    ) -> RcSubscription:
        body = {
            "eventFilters": event_filters,
            "deliveryMode": {"transportType": "WebHook", "address": address, "verificationToken": verification_token},
            "expiresIn": expires_in,
        }
        info, _ = await self._json(
            "subscription.create", SubscriptionInfo, "POST", SUBSCRIPTION, token=access_token, json=body
        )
        return info.to_domain()

    async def get_subscription(self, access_token: str, subscription_id: str) -> RcSubscription:
        info, _ = await self._json(
            "subscription.get", SubscriptionInfo, "GET", f"{SUBSCRIPTION}/{subscription_id}", token=access_token
        )
        return info.to_domain()

    async def renew_subscription(self, access_token: str, subscription_id: str) -> RcSubscription:
        info, _ = await self._json(
            "subscription.renew",
            SubscriptionInfo,
            "POST",
            f"{SUBSCRIPTION}/{subscription_id}/renew",
            token=access_token,
        )
        return info.to_domain()

    async def delete_subscription(self, access_token: str, subscription_id: str) -> None:
        await self._send("subscription.delete", "DELETE", f"{SUBSCRIPTION}/{subscription_id}", token=access_token)

    # --- SMS and the message store (§4) ----------------------------------------------------------
    async def send_sms(self, access_token: str, *, from_number: str, to_number: str, text: str) -> SentSms:
        body = {"from": {"phoneNumber": from_number}, "to": [{"phoneNumber": to_number}], "text": text}
        record, rate = await self._json("sms.send", MessageRecord, "POST", f"{EXT}/sms", token=access_token, json=body)
        return SentSms(message=record.to_domain(), rate=rate)

    async def get_message(self, access_token: str, message_id: str) -> RcMessage:
        record, _ = await self._json(
            "message.get", MessageRecord, "GET", f"{EXT}/message-store/{message_id}", token=access_token
        )
        return record.to_domain()

    async def list_messages(
        self,
        access_token: str,
        *,
        direction: str | None = None,
        date_from: datetime | None = None,
        date_to: datetime | None = None,
        per_page: int = 100,
        page: int = 1,
    ) -> list[RcMessage]:
        params: dict[str, Any] = {"messageType": "SMS", "perPage": per_page, "page": page}
        if direction:
            params["direction"] = direction
        if date_from is not None:
            params["dateFrom"] = isoformat_z(date_from)
        if date_to is not None:
            params["dateTo"] = isoformat_z(date_to)
        answer, _ = await self._json(
            "message.list", MessageList, "GET", f"{EXT}/message-store", token=access_token, params=params
        )
        return [r.to_domain() for r in answer.records]


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _ms(started: float) -> int:
    return int((time.perf_counter() - started) * 1000)
