"""`POST /v1/webhooks/ringcentral`: RingCentral's handshake and notifications (api.md §6).

Owns the HTTP side only: the handshake echo (no database work, a response well under 1024
bytes), token verification in constant time, the answer codes, and that the 200 goes out once
the message is durable and before anything is announced (the announcement runs as the
response's background task). Reading events and storing them is `InboundService`'s.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial

import orjson
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from gravity_sms.api.exchange import read_body, respond
from gravity_sms.container import Gateway
from gravity_sms.domain.inbound import InboundRoute, InboundService, InvalidEvent, parse_notification, parse_sms
from gravity_sms.domain.models import Message
from gravity_sms.telemetry import get_logger

log = get_logger("gravity.inbound")

PATH = "/v1/webhooks/ringcentral"
After = Callable[[], Awaitable[None]]
_OK = b'{"ok":true}'
_INVALID_EVENT = b'{"error":"Invalid event"}'
_INVALID_TOKEN = b'{"error":"Invalid verification token"}'


def _inbound(gw: Gateway) -> InboundService:
    assert gw.inbound is not None, "inbound service not wired"
    return gw.inbound


async def _announce(gw: Gateway, msg: Message, extension_id: str) -> None:
    try:
        await _inbound(gw).announce(msg, extension_id)
    except Exception:
        log.exception("inbound.announce_failed", message_id=msg.id)


async def _expiry_reminder(gw: Gateway, route: InboundRoute) -> None:
    if gw.connections is None:
        return
    try:
        await gw.connections.handle_expiry_reminder(route.subscription_id)
    except Exception:
        log.exception("inbound.reminder_failed", subscription_id=route.subscription_id)


class RingCentralWebhook:
    """The ASGI app of `POST /v1/webhooks/ringcentral`. What follows the answer (the
    announcement, an expiry reminder) runs after the response is sent, as Starlette's
    background tasks did, so it never delays the acknowledgement."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        gw: Gateway = scope["app"].state.gateway
        echo = presented = None
        for name, value in scope["headers"]:
            if name == b"validation-token":
                echo = value.decode("latin-1")
            elif name == b"verification-token":
                presented = value.decode("latin-1")
        raw = await read_body(receive)
        headers = [(b"validation-token", echo.encode("latin-1"))] if echo is not None else []
        status, body, after = await self._handle(gw, raw, echo, presented)
        if status == 0:
            # ringcentral.md §2 handshake: echo the token, empty body, no database work.
            await send({"type": "http.response.start", "status": 200, "headers": [*headers, (b"content-length", b"0")]})
            await send({"type": "http.response.body", "body": b""})
            return
        await respond(send, status, body, headers)
        if after is not None:
            await after()

    async def _handle(
        self, gw: Gateway, raw: bytes, echo: str | None, presented: str | None
    ) -> tuple[int, bytes, After | None]:
        outcome = gw.metrics.inbound
        if not raw.strip():
            if echo is not None:
                outcome.labels("handshake").inc()
                return 0, b"", None
            outcome.labels("invalid").inc()
            return 400, _INVALID_EVENT, None
        # An event names its token `Verification-Token`; one docs page says `Validation-Token`.
        presented = presented or echo
        try:
            note = parse_notification(orjson.loads(raw))
        except (orjson.JSONDecodeError, InvalidEvent):
            outcome.labels("invalid").inc()
            return 400, _INVALID_EVENT, None
        route = await _inbound(gw).store.inbound_route(note.subscription_id)
        if route is None or not presented or not route.token_matches(gw.box.hash(presented)):
            outcome.labels("unauthorized").inc()
            log.warning("inbound.unauthorized", subscription_known=route is not None)
            return 401, _INVALID_TOKEN, None
        if note.kind == "expiry_reminder":
            outcome.labels("reminder").inc()
            return 200, _OK, partial(_expiry_reminder, gw, route)
        if note.kind != "instant_sms":
            outcome.labels("ignored").inc()
            return 200, _OK, None
        try:
            sms = parse_sms(note.body)
        except InvalidEvent:
            outcome.labels("invalid").inc()
            return 400, _INVALID_EVENT, None
        if sms is None:
            outcome.labels("ignored").inc()  # an outbound copy: nothing to receive
            return 200, _OK, None
        if not route.accepting:
            # Disconnected extension, suspended tenant or a subscription we retired: acknowledged
            # (so RingCentral does not blacklist the address) and dropped.
            outcome.labels("ignored").inc()
            log.info("inbound.ignored", tenant_id=route.tenant_id, subscription_id=route.subscription_id)
            return 200, _OK, None
        msg, created = await _inbound(gw).save(route.tenant_id, route.extension_id, sms)
        if not created:
            outcome.labels("duplicate").inc()
            return 200, _OK, None
        outcome.labels("stored").inc()
        log.info("inbound.stored", message_id=msg.id, tenant_id=msg.tenant_id)
        return 200, _OK, partial(_announce, gw, msg, route.extension_id)


endpoint = RingCentralWebhook()
routes = [Route(PATH, endpoint, methods=["POST"])]
hot_routes = {("POST", PATH): endpoint}
