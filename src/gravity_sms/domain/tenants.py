"""Tenants: isolated organisations. Use cases and the store port they need."""

from __future__ import annotations

from typing import Any, Protocol

from gravity_sms.domain.clock import Clock
from gravity_sms.domain.errors import NotFound, ValidationFailed
from gravity_sms.domain.ids import is_tenant_id, new_tenant_id
from gravity_sms.domain.models import TENANT_STATUSES, Tenant
from gravity_sms.domain.ports import KeyCache


class TenantStore(Protocol):
    async def insert(self, tenant: Tenant) -> None: ...

    async def get(self, tenant_id: str) -> Tenant | None: ...

    async def find(self) -> list[Tenant]: ...

    async def update(self, tenant: Tenant) -> None: ...


def validate_name(name: object) -> str:
    if not isinstance(name, str) or not (1 <= len(name.strip()) and len(name) <= 100):
        raise ValidationFailed("name must be 1-100 characters")
    return name


def validate_status(status: object) -> str:
    if status not in TENANT_STATUSES:
        raise ValidationFailed("status must be one of active, suspended, inactive")
    return str(status)


class TenantService:
    def __init__(self, store: TenantStore, clock: Clock, key_cache: KeyCache) -> None:
        self.store = store
        self.clock = clock
        self.key_cache = key_cache

    async def create(self, name: object) -> Tenant:
        now = self.clock.now()
        tenant = Tenant(id=new_tenant_id(), name=validate_name(name), status="active", created_at=now, updated_at=now)
        await self.store.insert(tenant)
        return tenant

    async def get(self, tenant_id: str) -> Tenant:
        if not is_tenant_id(tenant_id):
            raise ValidationFailed("Invalid tenantId format")
        tenant = await self.store.get(tenant_id)
        if tenant is None:
            raise NotFound("Tenant not found")
        return tenant

    async def list_tenants(self) -> list[Tenant]:
        return await self.store.find()

    async def update(self, tenant_id: str, changes: dict[str, Any]) -> Tenant:
        tenant = await self.get(tenant_id)
        name = validate_name(changes["name"]) if "name" in changes else tenant.name
        status = validate_status(changes["status"]) if "status" in changes else tenant.status
        if (name, status) == (tenant.name, tenant.status):
            return tenant
        updated = Tenant(
            id=tenant.id, name=name, status=status, created_at=tenant.created_at, updated_at=self.clock.now()
        )
        await self.store.update(updated)
        if status != tenant.status:
            # Cached auth contexts carry the tenant status: drop them so 403 applies at once.
            await self.key_cache.invalidate_tenant(tenant.id)
        return updated
