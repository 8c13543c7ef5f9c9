"""Power Automate REST-hook triggers (api.md §8): subscribe and unsubscribe.

Owns the validation rules and tenant scoping; delivery follows the app webhook rules and is
done by the dispatcher.
"""

from __future__ import annotations

from typing import Any

from gravity_sms.domain.apps import TargetsChanged, UrlPolicy, ignore_changes
from gravity_sms.domain.clock import Clock
from gravity_sms.domain.errors import NotFound, ValidationFailed
from gravity_sms.domain.fanout import Trigger, TriggerStore
from gravity_sms.domain.ids import is_e164, is_trigger_id, new_trigger_id
from gravity_sms.domain.models import AuthContext

CALLBACK_ERROR = "Invalid callback URL"
PHONE_ERROR = "phoneNumber must be a valid E.164 phone number"


class TriggerService:
    def __init__(
        self, store: TriggerStore, clock: Clock, urls: UrlPolicy, on_targets_changed: TargetsChanged = ignore_changes
    ) -> None:
        self.store = store
        self.clock = clock
        self.urls = urls
        # Trigger changes reach the fan-out's per-tenant target cache at once (docs/webhooks.md).
        self.on_targets_changed = on_targets_changed

    async def subscribe(self, caller: AuthContext, body: dict[str, Any]) -> Trigger:
        url = await self.urls.check(body.get("callbackUrl"), format_error=CALLBACK_ERROR, private_error=CALLBACK_ERROR)
        phone = body.get("phoneNumber")
        if phone is not None and not is_e164(phone):
            raise ValidationFailed(PHONE_ERROR)
        trigger = Trigger(
            id=new_trigger_id(),
            tenant_id=caller.tenant_id,
            app_id=caller.app_id,
            callback_url=url,
            phone_number=phone,
            created_at=self.clock.now(),
        )
        await self.store.insert(trigger)
        self.on_targets_changed(trigger.tenant_id)
        return trigger

    async def unsubscribe(self, caller: AuthContext, trigger_id: str) -> None:
        trigger = await self.store.get(trigger_id) if is_trigger_id(trigger_id) else None
        if trigger is None or (not caller.is_admin and trigger.tenant_id != caller.tenant_id):
            raise NotFound("Trigger not found")
        await self.store.delete(trigger_id)
        self.on_targets_changed(trigger.tenant_id)
