"""Sending SMS (ringcentral.md §4): validation, ownership and SmsSender checks, the record.

Owns POST .../sms and the log behind `GET /_emulator/sms`. Progression of the record over
time belongs to messages.py.
"""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gravity_sms.emulator.access import Caller, json_object, rest_endpoint
from gravity_sms.emulator.clock import iso
from gravity_sms.emulator.errors import invalid_parameter, rest_error
from gravity_sms.emulator.identity import EXTENSION_PATH
from gravity_sms.emulator.messages import conversation_id, progress, render
from gravity_sms.emulator.state import EmulatorState, Message, state_of

MAX_TEXT_UNITS = 1000
MAX_RECIPIENTS = 10
PHONE = re.compile(r"^\+?[0-9]{3,15}$")


def utf16_units(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _recipients(data: dict[str, Any]) -> list[str]:
    to = data.get("to")
    if not isinstance(to, list) or not to or len(to) > MAX_RECIPIENTS:
        raise invalid_parameter("to")
    numbers = []
    for item in to:
        number = item.get("phoneNumber") if isinstance(item, dict) else None
        if not isinstance(number, str) or not PHONE.match(number):
            raise invalid_parameter("to.phoneNumber")
        numbers.append(number)
    return numbers


@rest_endpoint("Medium", limited_code="MSG-305")
async def send(request: Request, caller: Caller) -> Response:
    state = state_of(request)
    data = await json_object(request)
    sender = data.get("from")
    from_number = sender.get("phoneNumber") if isinstance(sender, dict) else None
    if not isinstance(from_number, str) or not from_number:
        raise invalid_parameter("from.phoneNumber")
    owned = next((n for n in caller.extension.phone_numbers if n.phone_number == from_number), None)
    if owned is None or "SmsSender" not in owned.features:
        message = (
            f"Parameter [from] value [{from_number}] is invalid [Cannot find the phone number which belongs to user]"
        )
        raise rest_error(400, "MSG-245", message, "from")
    numbers = _recipients(data)
    text = data.get("text")
    if not isinstance(text, str) or not text or utf16_units(text) > MAX_TEXT_UNITS:
        raise invalid_parameter("text")
    now = state.clock.now()
    msg = Message(
        id=state.new_message_id(),
        extension_id=caller.extension.id,
        account_id=caller.account_id,
        direction="Outbound",
        from_number=from_number,
        to_numbers=numbers,
        text=text,
        creation_time=now,
        last_modified_time=now,
        status="Queued",
        conversation_id=conversation_id(from_number, numbers[0]),
        read_status="Read",
        client_id=caller.client_id,
        planned_failure=state.faults.take_delivery_failure(numbers[0]),
    )
    state.messages[msg.id] = msg
    state.pending_outbound.add(msg.id)
    state.sent_sms_ids.append(msg.id)
    return JSONResponse(render(state, msg))


def sent_log(state: EmulatorState) -> list[dict[str, Any]]:
    progress(state)
    log = []
    for msg_id in state.sent_sms_ids:
        msg = state.messages[msg_id]
        log.append(
            {
                "id": str(msg.id),
                "from": msg.from_number,
                "to": msg.to_numbers[0],
                "recipients": list(msg.to_numbers),
                "text": msg.text,
                "extensionId": msg.extension_id,
                "clientId": msg.client_id,
                "authorization": True,
                "createdAt": iso(msg.creation_time),
                "status": msg.status,
                "errorCode": msg.error_code,
            }
        )
    return log


routes = [Route(f"{EXTENSION_PATH}/sms", send, methods=["POST"])]
