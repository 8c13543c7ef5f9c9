"""Apps and their API keys: registration, listing, updates, key and webhook-secret rotation.

API keys are stored only as SHA-256 hashes plus the 8-character prefix; webhook secrets are stored
encrypted (they must be usable for signing). Plaintexts are returned exactly once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Protocol

from gravity_sms.domain.clock import Clock, isoformat_z
from gravity_sms.domain.errors import Forbidden, NotFound, ValidationFailed
from gravity_sms.domain.ids import (
    api_key_prefix,
    is_app_id,
    is_tenant_id,
    new_api_key,
    new_app_id,
    new_webhook_secret,
)
from gravity_sms.domain.models import App, AppSecrets, AuthContext
from gravity_sms.domain.ports import KeyCache, SecretBox
from gravity_sms.domain.tenants import TenantStore, validate_name
from gravity_sms.domain.urls import Resolver, UrlRejected, system_resolver, validate_target_url

SECRET_ROTATION_GRACE = timedelta(hours=24)
WEBHOOK_URL_ERROR = "Invalid webhookUrl: must be https:// in production, max 2000 chars"
WEBHOOK_URL_PRIVATE = "Invalid webhookUrl: private or internal addresses are not allowed"

# Told the tenant id whenever an app's webhookUrl or signing secret may have changed: the fan-out
# caches what it delivers to per tenant (docs/webhooks.md) and drops that entry at once.
TargetsChanged = Callable[[str], None]


def ignore_changes(_tenant_id: str) -> None:
    """The default listener: nothing caches targets."""


@dataclass(frozen=True, slots=True)
class StoredSecrets:
    webhook_secret_enc: str
    previous_secret_enc: str | None
    previous_secret_expires_at: datetime | None


class AppStore(Protocol):
    async def insert(self, app: App, key_hash: str, secret_enc: str) -> None: ...

    async def get(self, app_id: str) -> App | None: ...

    async def find(self, tenant_id: str | None) -> list[App]: ...

    async def update(self, app: App) -> None: ...

    async def delete(self, app_id: str) -> str | None:
        """Delete; return the deleted key's hash (None when no such app)."""
        ...

    async def replace_key(self, app_id: str, key_hash: str, prefix: str, at: datetime) -> str | None:
        """Swap the key hash; return the old one."""
        ...

    async def get_secrets(self, app_id: str) -> StoredSecrets | None: ...

    async def set_secrets(self, app_id: str, secrets: StoredSecrets, at: datetime) -> None: ...

    async def auth_lookup(self, key_hash: str) -> AuthContext | None:
        """The app and its tenant's status for a key hash, in one query."""
        ...

    async def touch_last_used(self, app_id: str, at: datetime) -> None: ...


@dataclass(frozen=True, slots=True)
class UrlPolicy:
    https_only: bool = False
    block_private: bool = False
    resolver: Resolver = system_resolver

    async def check(self, url: object, *, format_error: str, private_error: str) -> str:
        try:
            return await validate_target_url(
                url, https_only=self.https_only, block_private=self.block_private, resolver=self.resolver
            )
        except UrlRejected as exc:
            raise ValidationFailed(private_error if exc.reason == "private" else format_error) from exc


class AppService:
    def __init__(
        self,
        store: AppStore,
        tenants: TenantStore,
        key_cache: KeyCache,
        box: SecretBox,
        clock: Clock,
        urls: UrlPolicy,
        on_targets_changed: TargetsChanged = ignore_changes,
    ) -> None:
        self.store = store
        self.tenants = tenants
        self.key_cache = key_cache
        self.box = box
        self.clock = clock
        self.urls = urls
        self.on_targets_changed = on_targets_changed

    async def _webhook_url(self, value: object) -> str | None:
        if value is None:
            return None
        return await self.urls.check(value, format_error=WEBHOOK_URL_ERROR, private_error=WEBHOOK_URL_PRIVATE)

    async def register(self, caller: AuthContext | None, body: dict[str, Any]) -> dict[str, Any]:
        """`caller` None means the command line (operator bootstrap)."""
        name = validate_name(body.get("name"))
        tenant_id = body.get("tenantId")
        if tenant_id is None or tenant_id == "":
            raise ValidationFailed("tenantId is required when registering new apps")
        if not is_tenant_id(tenant_id):
            raise ValidationFailed("Invalid tenantId format")
        role = body.get("role", "app")
        if role is None:
            role = "app"
        if role not in ("app", "admin"):
            raise ValidationFailed("role must be one of app, admin")
        if caller is not None and not caller.is_admin:
            if role == "admin":
                raise Forbidden("Admin API key required")
            if tenant_id != caller.tenant_id:
                raise ValidationFailed("Tenant not found or not active")
        tenant = await self.tenants.get(str(tenant_id))
        if tenant is None or tenant.status != "active":
            raise ValidationFailed("Tenant not found or not active")
        webhook_url = await self._webhook_url(body.get("webhookUrl"))
        api_key = new_api_key()
        secret = new_webhook_secret()
        now = self.clock.now()
        app = App(
            id=new_app_id(),
            tenant_id=tenant.id,
            name=name,
            role=str(role),
            webhook_url=webhook_url,
            api_key_prefix=api_key_prefix(api_key),
            last_used_at=None,
            created_at=now,
            updated_at=now,
        )
        await self.store.insert(app, self.box.hash(api_key), self.box.encrypt(secret))
        if webhook_url is not None:
            self.on_targets_changed(app.tenant_id)
        return {
            "appId": app.id,
            "name": app.name,
            "apiKey": api_key,
            "apiKeyPrefix": app.api_key_prefix,
            "webhookSecret": secret,
            "role": app.role,
            "tenantId": app.tenant_id,
            "webhookUrl": app.webhook_url,
            "createdAt": isoformat_z(now),
        }

    async def get(self, caller: AuthContext | None, app_id: str) -> App:
        if not is_app_id(app_id):
            raise ValidationFailed("Invalid appId format")
        app = await self.store.get(app_id)
        if app is None or (caller is not None and not caller.is_admin and app.tenant_id != caller.tenant_id):
            raise NotFound("App not found")
        return app

    async def list_apps(self, caller: AuthContext | None, tenant_id: str | None = None) -> list[App]:
        if caller is not None and not caller.is_admin:
            return await self.store.find(caller.tenant_id)
        if tenant_id is not None and not is_tenant_id(tenant_id):
            raise ValidationFailed("Invalid tenantId format")
        return await self.store.find(tenant_id)

    async def update(self, caller: AuthContext | None, app_id: str, body: dict[str, Any]) -> App:
        app = await self.get(caller, app_id)
        changes: dict[str, Any] = {}
        if "name" in body:
            changes["name"] = validate_name(body["name"])
        if "webhookUrl" in body:
            changes["webhook_url"] = await self._webhook_url(body["webhookUrl"])
        if not changes:
            return app
        updated = replace(app, updated_at=self.clock.now(), **changes)
        await self.store.update(updated)
        if updated.webhook_url != app.webhook_url:
            self.on_targets_changed(app.tenant_id)
        return updated

    async def delete(self, caller: AuthContext | None, app_id: str) -> None:
        app = await self.get(caller, app_id)
        old_hash = await self.store.delete(app_id)
        self.on_targets_changed(app.tenant_id)
        if old_hash:
            await self.key_cache.invalidate(old_hash)

    async def rotate_key(self, caller: AuthContext | None, app_id: str) -> dict[str, str]:
        await self.get(caller, app_id)
        api_key = new_api_key()
        old_hash = await self.store.replace_key(
            app_id, self.box.hash(api_key), api_key_prefix(api_key), self.clock.now()
        )
        if old_hash:
            await self.key_cache.invalidate(old_hash)
        return {"apiKey": api_key, "apiKeyPrefix": api_key_prefix(api_key)}

    async def rotate_webhook_secret(self, caller: AuthContext | None, app_id: str) -> dict[str, str]:
        app = await self.get(caller, app_id)
        stored = await self.store.get_secrets(app_id)
        if stored is None:
            raise NotFound("App not found")
        secret = new_webhook_secret()
        now = self.clock.now()
        await self.store.set_secrets(
            app_id,
            StoredSecrets(
                webhook_secret_enc=self.box.encrypt(secret),
                previous_secret_enc=stored.webhook_secret_enc,
                previous_secret_expires_at=now + SECRET_ROTATION_GRACE,
            ),
            now,
        )
        self.on_targets_changed(app.tenant_id)
        return {"webhookSecret": secret}

    async def signing_secrets(self, app_id: str) -> AppSecrets | None:
        """Secrets to sign a delivery with: the current one, plus the previous one for 24 h."""
        stored = await self.store.get_secrets(app_id)
        if stored is None:
            return None
        previous = None
        if (
            stored.previous_secret_enc
            and stored.previous_secret_expires_at
            and stored.previous_secret_expires_at > self.clock.now()
        ):
            previous = self.box.decrypt(stored.previous_secret_enc)
        return AppSecrets(
            app_id=app_id,
            webhook_secret=self.box.decrypt(stored.webhook_secret_enc),
            previous_secret=previous,
            previous_expires_at=stored.previous_secret_expires_at,
        )
