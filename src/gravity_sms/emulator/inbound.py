"""Inbound SMS injected through the control API: stored, then pushed to subscriptions.

Owns the instant-SMS event body (event__instant_sms_inbound.json) and the message-store
change event, and which subscriptions receive them.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Coroutine
from typing import Any

from gravity_sms.emulator.clock import iso
from gravity_sms.emulator.errors import invalid_parameter, not_found
from gravity_sms.emulator.messages import conversation_id
from gravity_sms.emulator.sms import PHONE
from gravity_sms.emulator.state import EmulatorState, Extension, Message
from gravity_sms.emulator.webhooks import deliver, deliverable, envelope

NANP = re.compile(r"^\+1(\d{3})(\d{7})$")


def instant_filter(ext: Extension) -> str:
    return f"/restapi/v1.0/account/{ext.account_id}/extension/{ext.id}/message-store/instant?type=SMS"


def store_filter(ext: Extension) -> str:
    return f"/restapi/v1.0/account/{ext.account_id}/extension/{ext.id}/message-store"


def instant_body(ext: Extension, msg: Message) -> dict[str, Any]:
    """ringcentral.md §3: in events the id is a string; `subject` holds the text."""
    recipients = []
    for number in msg.to_numbers:
        item: dict[str, Any] = {"phoneNumber": number, "name": ext.name}
        location = next((n.location for n in ext.phone_numbers if n.phone_number == number), None)
        if location is not None:
            item["location"] = location
        item["target"] = True
        recipients.append(item)
    sender: dict[str, Any] = {"phoneNumber": msg.from_number}
    if msg.from_location is not None:
        sender["location"] = msg.from_location
    if match := NANP.match(msg.from_number):
        sender["phoneNumberInfo"] = {
            "countryCode": "1",
            "nationalDestinationCode": match.group(1),
            "subscriberNumber": match.group(2),
        }
    created = iso(msg.creation_time)
    return {
        "id": str(msg.id),
        "to": recipients,
        "from": sender,
        "type": "SMS",
        "creationTime": created,
        "lastModifiedTime": created,
        "readStatus": "Unread",
        "priority": "Normal",
        "attachments": [{"id": str(msg.id), "type": "Text", "contentType": "text/plain"}],
        "direction": "Inbound",
        "availability": "Alive",
        "subject": msg.text,
        "messageStatus": "Received",
        "conversation": {"id": str(msg.conversation_id)},
        "eventType": "Create",
        "owner": {"extensionId": ext.id, "extensionType": ext.type, "name": ext.name},
    }


def store_change_body(ext: Extension, msg: Message) -> dict[str, Any]:
    return {
        "accountId": int(ext.account_id),
        "extensionId": int(ext.id),
        "lastUpdated": iso(msg.creation_time),
        "changes": [{"type": "SMS", "newCount": 1, "updatedCount": 0, "newMessageIds": [msg.id]}],
    }


def _field(data: dict[str, Any], name: str) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value:
        raise invalid_parameter(name)
    return value


def store_inbound(state: EmulatorState, data: dict[str, Any]) -> tuple[Extension, Message]:
    sender, recipient, text = _field(data, "from"), _field(data, "to"), _field(data, "text")
    if not PHONE.match(sender):
        raise invalid_parameter("from", sender)
    ext_id = data.get("extensionId")
    ext = state.extensions.get(str(ext_id)) if ext_id is not None else state.owner_of_number(recipient)
    if ext is None:
        raise not_found("extensionId" if ext_id is not None else "to")
    now = state.clock.now()
    msg = Message(
        id=state.new_message_id(),
        extension_id=ext.id,
        account_id=ext.account_id,
        direction="Inbound",
        from_number=sender,
        to_numbers=[recipient],
        text=text,
        creation_time=now,
        last_modified_time=now,
        status="Received",
        conversation_id=conversation_id(recipient, sender),
        read_status="Unread",
        from_location=data.get("fromLocation") if isinstance(data.get("fromLocation"), str) else None,
    )
    state.messages[msg.id] = msg
    return ext, msg


async def inject(state: EmulatorState, data: dict[str, Any], *, deliver_now: bool) -> dict[str, Any]:
    """Stores the message and, unless told not to, delivers before answering.

    `duplicates: N` sends the very same event (same uuid) N times concurrently to each
    subscription, as RingCentral occasionally does.
    """
    duplicates = data.get("duplicates", 1)
    if not isinstance(duplicates, int) or isinstance(duplicates, bool) or not 1 <= duplicates <= 100:
        raise invalid_parameter("duplicates")
    ext, msg = store_inbound(state, data)
    calls: list[Coroutine[Any, Any, dict[str, Any]]] = []
    if deliver_now:
        for sub in list(state.subscriptions.values()):
            if sub.extension_id != ext.id or not deliverable(state, sub):
                continue
            if instant_filter(ext) in sub.event_filters:
                event = envelope(state, sub, instant_filter(ext), instant_body(ext, msg))
                calls += [deliver(state, sub, event, "instant-sms") for _ in range(duplicates)]
            if store_filter(ext) in sub.event_filters:
                event = envelope(state, sub, store_filter(ext), store_change_body(ext, msg))
                calls += [deliver(state, sub, event, "message-store") for _ in range(duplicates)]
    results = list(await asyncio.gather(*calls))
    return {"id": str(msg.id), "extensionId": ext.id, "deliveries": results}
