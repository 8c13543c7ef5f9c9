"""Time-driven work: outbound status progression and subscription expiry reminders.

Owns `run_pending` (called by the background ticker while the app runs with a lifespan,
after every clock advance, and by `POST /_emulator/deliver-pending`) and the ticker loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any
from urllib.parse import parse_qs, urlsplit

from gravity_sms.emulator.messages import progress
from gravity_sms.emulator.state import EmulatorState, Subscription
from gravity_sms.emulator.webhooks import deliver, deliverable, envelope

log = logging.getLogger("gravity_sms.emulator")
REMINDER_PREFIX = "/restapi/v1.0/subscription/"


def reminder_of(sub: Subscription) -> tuple[str, float, float] | None:
    """The expiry-reminder filter (ringcentral.md §2): (event string, threshold, interval).

    The event string is the filter as the client wrote it (`~` kept), as in
    event__subscription_expiry_reminder.json.
    """
    for raw in sub.requested_filters:
        parts = urlsplit(raw)
        if not parts.path.startswith(REMINDER_PREFIX):
            continue
        if parts.path[len(REMINDER_PREFIX) :] not in ("~", sub.id):
            continue
        query = parse_qs(parts.query)
        try:
            threshold = float(query["threshold"][0])
            interval = float(query.get("interval", ["3600"])[0])
        except (KeyError, ValueError):
            continue
        return raw, threshold, max(interval, 1.0)
    return None


async def run_pending(state: EmulatorState) -> dict[str, Any]:
    async with state.pending_lock:
        changed = progress(state)
        now = state.clock.now()
        calls: list[Coroutine[Any, Any, dict[str, Any]]] = []
        for sub in list(state.subscriptions.values()):
            reminder = reminder_of(sub)
            if reminder is None or not deliverable(state, sub):
                continue
            event_name, threshold, interval = reminder
            remaining = sub.expiration_time - now
            if remaining > threshold:
                continue
            if sub.last_reminder_at is not None and now - sub.last_reminder_at < interval:
                continue
            sub.last_reminder_at = now
            event = envelope(state, sub, event_name, {"expiresIn": int(remaining)})
            calls.append(deliver(state, sub, event, "expiry-reminder"))
        reminders = list(await asyncio.gather(*calls))
    return {"messagesUpdated": changed, "reminders": reminders}


async def run_ticker(state: EmulatorState, period: float) -> None:
    """Runs until cancelled; one failing round is logged and the next goes on."""
    while True:
        await asyncio.sleep(period)
        try:
            await run_pending(state)
        except Exception:
            log.exception("emulator.tick_failed")
