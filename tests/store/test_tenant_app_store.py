"""Store contract for tenants and apps: the same cases on SQLite and (when configured) PostgreSQL."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.exc import IntegrityError

from gravity_sms.domain.apps import StoredSecrets
from gravity_sms.domain.models import App, Tenant
from gravity_sms.store import Database, SqlStore

T0 = datetime(2026, 3, 1, 12, 0, 0, 123000, tzinfo=UTC)


def tenant(n: int, status: str = "active", at: datetime = T0) -> Tenant:
    return Tenant(id=f"tenant_{n:016x}", name=f"Tenant {n}", status=status, created_at=at, updated_at=at)


def app(n: int, tenant_id: str, at: datetime = T0, role: str = "app", url: str | None = None) -> App:
    return App(
        id=f"app_{n:016x}",
        tenant_id=tenant_id,
        name=f"App {n}",
        role=role,
        webhook_url=url,
        api_key_prefix="sgw_abcd",
        last_used_at=None,
        created_at=at,
        updated_at=at,
    )


@pytest.fixture
def store(database: Database) -> SqlStore:
    return SqlStore(database)


async def test_tenant_round_trip_keeps_aware_utc_milliseconds(store: SqlStore) -> None:
    t = tenant(1)
    await store.tenants.insert(t)
    got = await store.tenants.get(t.id)
    assert got == t
    assert got is not None and got.created_at.tzinfo is not None
    assert await store.tenants.get("tenant_ffffffffffffffff") is None


async def test_tenants_list_oldest_first_and_update(store: SqlStore) -> None:
    await store.tenants.insert(tenant(2, at=T0 + timedelta(seconds=1)))
    await store.tenants.insert(tenant(1))
    assert [t.id for t in await store.tenants.find()] == [tenant(1).id, tenant(2).id]
    changed = Tenant(tenant(1).id, "Renamed", "suspended", T0, T0 + timedelta(minutes=1))
    await store.tenants.update(changed)
    assert await store.tenants.get(changed.id) == changed


async def test_duplicate_tenant_id_is_refused(store: SqlStore) -> None:
    await store.tenants.insert(tenant(1))
    with pytest.raises(IntegrityError):
        await store.tenants.insert(tenant(1))


async def test_app_round_trip_and_listing_by_tenant(store: SqlStore) -> None:
    ta, tb = tenant(1), tenant(2)
    await store.tenants.insert(ta)
    await store.tenants.insert(tb)
    a1 = app(1, ta.id, url="https://hooks.example.com/a")
    a2 = app(2, tb.id, at=T0 + timedelta(seconds=1), role="admin")
    a3 = app(3, ta.id, at=T0 + timedelta(seconds=2))
    for a, n in ((a1, 1), (a2, 2), (a3, 3)):
        await store.apps.insert(a, f"{n:064x}", f"v1:enc{n}")
    assert await store.apps.get(a1.id) == a1
    assert await store.apps.get("app_ffffffffffffffff") is None
    assert [a.id for a in await store.apps.find(ta.id)] == [a1.id, a3.id]
    assert [a.id for a in await store.apps.find(None)] == [a1.id, a2.id, a3.id]
    assert [a.id for a in await store.apps.list_webhook_targets(ta.id)] == [a1.id]


async def test_app_needs_an_existing_tenant(store: SqlStore) -> None:
    with pytest.raises(IntegrityError):
        await store.apps.insert(app(1, "tenant_ffffffffffffffff"), "0" * 64, "v1:x")


async def test_key_hash_is_unique(store: SqlStore) -> None:
    await store.tenants.insert(tenant(1))
    await store.apps.insert(app(1, tenant(1).id), "a" * 64, "v1:x")
    with pytest.raises(IntegrityError):
        await store.apps.insert(app(2, tenant(1).id), "a" * 64, "v1:y")


async def test_auth_lookup_joins_tenant_status(store: SqlStore) -> None:
    await store.tenants.insert(tenant(1, status="suspended"))
    await store.apps.insert(app(1, tenant(1).id, role="admin"), "b" * 64, "v1:x")
    ctx = await store.apps.auth_lookup("b" * 64)
    assert ctx is not None
    assert (ctx.app_id, ctx.tenant_id, ctx.role, ctx.tenant_status, ctx.is_admin) == (
        app(1, "").id,
        tenant(1).id,
        "admin",
        "suspended",
        True,
    )
    assert await store.apps.auth_lookup("c" * 64) is None


async def test_update_replace_key_delete(store: SqlStore) -> None:
    await store.tenants.insert(tenant(1))
    a = app(1, tenant(1).id)
    await store.apps.insert(a, "1" * 64, "v1:x")
    later = T0 + timedelta(minutes=5)
    changed = replace(a, name="New", webhook_url="https://x.example/h")
    await store.apps.update(changed)
    assert (await store.apps.get(a.id)) == changed

    assert await store.apps.replace_key(a.id, "2" * 64, "sgw_9999", later) == "1" * 64
    assert await store.apps.auth_lookup("1" * 64) is None
    assert (await store.apps.auth_lookup("2" * 64)) is not None
    got = await store.apps.get(a.id)
    assert got is not None and (got.api_key_prefix, got.updated_at) == ("sgw_9999", later)

    await store.apps.touch_last_used(a.id, later)
    got = await store.apps.get(a.id)
    assert got is not None and got.last_used_at == later

    assert await store.apps.delete(a.id) == "2" * 64
    assert await store.apps.get(a.id) is None
    assert await store.apps.delete(a.id) is None
    assert await store.apps.replace_key(a.id, "3" * 64, "sgw_0000", later) is None


async def test_secrets_are_stored_as_given(store: SqlStore) -> None:
    await store.tenants.insert(tenant(1))
    await store.apps.insert(app(1, tenant(1).id), "1" * 64, "v1:first")
    assert await store.apps.get_secrets(app(1, "").id) == StoredSecrets("v1:first", None, None)
    expires = T0 + timedelta(hours=24)
    await store.apps.set_secrets(app(1, "").id, StoredSecrets("v1:second", "v1:first", expires), T0)
    assert await store.apps.get_secrets(app(1, "").id) == StoredSecrets("v1:second", "v1:first", expires)
    assert await store.apps.get_secrets("app_ffffffffffffffff") is None


async def test_ping(store: SqlStore) -> None:
    await store.ping()
