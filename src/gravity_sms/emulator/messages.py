"""The message store (ringcentral.md §4): records, status progression over time, read and list.

Owns the REST shape of a message (message__delivered.json) and the Queued → Sent →
Delivered / DeliveryFailed / SendingFailed progression, driven by the emulator clock.
"""

from __future__ import annotations

import hashlib
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gravity_sms.emulator.access import Caller, rest_endpoint
from gravity_sms.emulator.clock import iso, parse_iso
from gravity_sms.emulator.errors import invalid_parameter, not_found
from gravity_sms.emulator.identity import EXTENSION_PATH, extension_uri
from gravity_sms.emulator.paging import page_params, paged
from gravity_sms.emulator.state import EmulatorState, Extension, Message, state_of

DEFAULT_LOOKBACK_SECONDS = 24 * 3600  # RingCentral's default dateFrom: the last 24 hours


def conversation_id(own_number: str, other_number: str) -> int:
    """Stable per pair of numbers, like RingCentral's conversation ids."""
    digest = hashlib.sha256(f"{own_number}|{other_number}".encode()).hexdigest()
    return int(digest[:15], 16)


def segment_count(text: str) -> int:
    # GSM-7 text (approximated as ASCII) has 160 characters in one part, 153 per part when
    # concatenated; anything else is UCS-2 with 70 / 67.
    units = len(text.encode("utf-16-le")) // 2
    single, multi = (160, 153) if text.isascii() else (70, 67)
    return 1 if units <= single else -(-units // multi)


def _location(ext: Extension, number: str) -> str | None:
    return next((n.location for n in ext.phone_numbers if n.phone_number == number), None)


def render(state: EmulatorState, msg: Message) -> dict[str, Any]:
    base = state.config.public_url
    ext = state.extensions[msg.extension_id]
    uri = f"{extension_uri(base, ext)}/message-store/{msg.id}"
    own: dict[str, Any]
    if msg.direction == "Outbound":
        own = {"phoneNumber": msg.from_number, "name": ext.name}
        if (location := _location(ext, msg.from_number)) is not None:
            own["location"] = location
        sender, recipients = own, [{"phoneNumber": n} for n in msg.to_numbers]
    else:
        recipients = []
        for number in msg.to_numbers:
            item: dict[str, Any] = {"phoneNumber": number, "name": ext.name}
            if (location := _location(ext, number)) is not None:
                item["location"] = location
            recipients.append(item)
        sender = {"phoneNumber": msg.from_number}
        if msg.from_location is not None:
            sender["location"] = msg.from_location
    body: dict[str, Any] = {
        "uri": uri,
        "id": msg.id,
        "to": recipients,
        "from": sender,
        "type": "SMS",
        "creationTime": iso(msg.creation_time),
        "readStatus": msg.read_status,
        "priority": "Normal",
        "attachments": [{"id": msg.id, "uri": f"{uri}/content/{msg.id}", "type": "Text", "contentType": "text/plain"}],
        "direction": msg.direction,
        "availability": "Alive",
        "subject": msg.text,
        "messageStatus": msg.status,
    }
    if msg.direction == "Outbound":
        body["smsSendingAttemptsCount"] = 1
    body["conversationId"] = msg.conversation_id
    body["conversation"] = {
        "id": str(msg.conversation_id),
        "uri": f"{base}/restapi/v1.0/conversation/{msg.conversation_id}",
    }
    body["lastModifiedTime"] = iso(msg.last_modified_time)
    if msg.delivery_time is not None:
        body["smsDeliveryTime"] = iso(msg.delivery_time)
    if msg.direction == "Outbound" and msg.status in ("Sent", "Delivered", "DeliveryFailed"):
        body["segmentCount"] = segment_count(msg.text)
    if msg.error_code is not None:
        body["deliveryErrorCode"] = msg.error_code
    return body


def progress(state: EmulatorState) -> int:
    """Moves outbound messages along by the emulator clock; answers how many changed."""
    now = state.clock.now()
    sent_after = state.config.sent_after_seconds
    delivered_after = max(state.config.delivered_after_seconds, sent_after)
    changed = 0
    for msg_id in sorted(state.pending_outbound):
        msg = state.messages[msg_id]
        before = msg.status
        age = now - msg.creation_time
        failure = msg.planned_failure
        if failure is not None and failure[0] == "SendingFailed":
            if age >= sent_after:
                msg.status, msg.error_code = failure
                msg.last_modified_time = msg.creation_time + sent_after
        else:
            if msg.status == "Queued" and age >= sent_after:
                msg.status = "Sent"
                msg.last_modified_time = msg.creation_time + sent_after
            if msg.status == "Sent" and age >= delivered_after:
                msg.last_modified_time = msg.creation_time + delivered_after
                if failure is not None:
                    msg.status, msg.error_code = failure
                else:
                    msg.status = "Delivered"
                    msg.delivery_time = msg.last_modified_time
        if msg.status not in ("Queued", "Sent"):
            state.pending_outbound.discard(msg_id)
        changed += msg.status != before
    return changed


@rest_endpoint("Light")
async def get_message(request: Request, caller: Caller) -> Response:
    state = state_of(request)
    progress(state)
    try:
        msg = state.messages.get(int(request.path_params["message_id"]))
    except ValueError:
        msg = None
    if msg is None or msg.extension_id != caller.extension.id:
        raise not_found("messageId")
    return JSONResponse(render(state, msg))


def _time_param(request: Request, name: str, default: float) -> float:
    value = request.query_params.get(name)
    if not value:
        return default
    try:
        return parse_iso(value)
    except ValueError:
        raise invalid_parameter(name, value) from None


@rest_endpoint("Light")
async def list_messages(request: Request, caller: Caller) -> Response:
    state = state_of(request)
    progress(state)
    query = request.query_params
    page, per_page = page_params(query)
    now = state.clock.now()
    date_from = _time_param(request, "dateFrom", now - DEFAULT_LOOKBACK_SECONDS)
    date_to = _time_param(request, "dateTo", float("inf"))
    directions = query.getlist("direction")
    types = query.getlist("messageType")
    read_statuses = query.getlist("readStatus")
    conversation = query.get("conversationId")
    selected = [
        m
        for m in state.messages.values()
        if m.extension_id == caller.extension.id
        and date_from <= m.creation_time < date_to
        and (not directions or m.direction in directions)
        and (not types or "SMS" in types)
        and (not read_statuses or m.read_status in read_statuses)
        and (conversation is None or str(m.conversation_id) == conversation)
    ]
    selected.sort(key=lambda m: (m.creation_time, m.id), reverse=True)
    extra = [(k, v) for k, v in query.multi_items() if k not in ("page", "perPage")]
    base = f"{extension_uri(state.config.public_url, caller.extension)}/message-store"
    return JSONResponse(paged(base, [render(state, m) for m in selected], page, per_page, extra))


routes = [
    Route(f"{EXTENSION_PATH}/message-store", list_messages, methods=["GET"]),
    Route(f"{EXTENSION_PATH}/message-store/{{message_id}}", get_message, methods=["GET"]),
]
