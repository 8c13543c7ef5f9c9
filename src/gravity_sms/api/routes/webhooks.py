"""`POST /v1/webhooks/ringcentral`: RingCentral's handshake and notifications (api.md §6).

Owns the HTTP side only: the handshake echo (no database work, a response well under 1024
bytes), token verification in constant time, the answer codes, and that the 200 goes out once
the message is durable and before anything is announced (the announcement runs as the
response's background task). Reading events and storing them is `InboundService`'s.
"""

from __future__ import annotations

import orjson
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gravity_sms.api.deps import gateway as _gw
from gravity_sms.container import Gateway
from gravity_sms.domain.inbound import InboundRoute, InboundService, InvalidEvent, parse_notification, parse_sms
from gravity_sms.domain.models import Message
from gravity_sms.telemetry import get_logger

log = get_logger("gravity.inbound")

_OK = b'{"ok":true}'
_INVALID_EVENT = b'{"error":"Invalid event"}'
_INVALID_TOKEN = b'{"error":"Invalid verification token"}'


def _inbound(gw: Gateway) -> InboundService:
    assert gw.inbound is not None, "inbound service not wired"
    return gw.inbound


def _reply(body: bytes, status: int, echo: str | None, background: BackgroundTask | None = None) -> Response:
    headers = {"Validation-Token": echo} if echo is not None else None
    return Response(body, status_code=status, headers=headers, media_type="application/json", background=background)


async def _announce(gw: Gateway, msg: Message, extension_id: str) -> None:
    try:
        await _inbound(gw).announce(msg, extension_id)
    except Exception:
        log.exception("inbound.announce_failed", message_id=msg.id)


async def _expiry_reminder(gw: Gateway, route: InboundRoute) -> None:
    handler = getattr(getattr(gw, "connections", None), "handle_expiry_reminder", None)
    if handler is None:
        return
    try:
        await handler(route.subscription_id)
    except Exception:
        log.exception("inbound.reminder_failed", subscription_id=route.subscription_id)


async def ringcentral_webhook(request: Request) -> Response:
    gw = _gw(request)
    outcome = gw.metrics.inbound
    echo = request.headers.get("validation-token")
    raw = await request.body()
    if not raw.strip():
        if echo is not None:
            # ringcentral.md §2 handshake: echo the token, empty body, no database work.
            outcome.labels("handshake").inc()
            return Response(status_code=200, headers={"Validation-Token": echo})
        outcome.labels("invalid").inc()
        return _reply(_INVALID_EVENT, 400, None)
    # An event names its token `Verification-Token`; one docs page says `Validation-Token`.
    presented = request.headers.get("verification-token") or echo
    try:
        note = parse_notification(orjson.loads(raw))
    except (orjson.JSONDecodeError, InvalidEvent):
        outcome.labels("invalid").inc()
        return _reply(_INVALID_EVENT, 400, echo)
    route = await _inbound(gw).store.inbound_route(note.subscription_id)
    if route is None or not presented or not route.token_matches(gw.box.hash(presented)):
        outcome.labels("unauthorized").inc()
        log.warning("inbound.unauthorized", subscription_known=route is not None)
        return _reply(_INVALID_TOKEN, 401, echo)
    if note.kind == "expiry_reminder":
        outcome.labels("reminder").inc()
        return _reply(_OK, 200, echo, BackgroundTask(_expiry_reminder, gw, route))
    if note.kind != "instant_sms":
        outcome.labels("ignored").inc()
        return _reply(_OK, 200, echo)
    try:
        sms = parse_sms(note.body)
    except InvalidEvent:
        outcome.labels("invalid").inc()
        return _reply(_INVALID_EVENT, 400, echo)
    if sms is None:
        outcome.labels("ignored").inc()  # an outbound copy: nothing to receive
        return _reply(_OK, 200, echo)
    if not route.accepting:
        # Disconnected extension, suspended tenant or a subscription we retired: acknowledged
        # (so RingCentral does not blacklist the address) and dropped.
        outcome.labels("ignored").inc()
        log.info("inbound.ignored", tenant_id=route.tenant_id, subscription_id=route.subscription_id)
        return _reply(_OK, 200, echo)
    msg, created = await _inbound(gw).save(route.tenant_id, route.extension_id, sms)
    if not created:
        outcome.labels("duplicate").inc()
        return _reply(_OK, 200, echo)
    outcome.labels("stored").inc()
    log.info("inbound.stored", message_id=msg.id, tenant_id=msg.tenant_id)
    return _reply(_OK, 200, echo, BackgroundTask(_announce, gw, msg, route.extension_id))


routes = [Route("/v1/webhooks/ringcentral", ringcentral_webhook, methods=["POST"])]
