"""ConnectionService.call() against the emulator: single-flight refresh, the grace window,
a rejected refresh token, an expired access token mid-call."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gravity_sms.domain.connections import REFRESH_BACKOFF_FIRST
from gravity_sms.domain.errors import ConnectionRevoked, ProviderError, RefreshFailed
from gravity_sms.store import Database
from tests.conftest import Actor
from tests.rc_support import EXT, Stack, actor, in_process_stack


@pytest.fixture
async def stack(database: Database, tmp_path: Path) -> AsyncIterator[Stack]:
    async with in_process_stack(database, tmp_path, enforce_rate_limits=False) as s:
        yield s


@pytest.fixture
async def acme(stack: Stack) -> Actor:
    a = await actor(stack.gw, "Acme")
    await stack.connect(a)
    return a


async def refreshes(stack: Stack) -> list[dict[str, object]]:
    calls = await stack.requests("/restapi/oauth/token", "POST")
    return [c for c in calls if c["form"]["grant_type"] == "refresh_token"]  # type: ignore[index]


async def whoami(stack: Stack, tenant_id: str) -> str:
    ext = await stack.gw.connections.call(tenant_id, EXT, stack.gw.rc.get_extension)
    return str(ext.id)


async def test_fifty_concurrent_calls_needing_a_fresh_token_make_one_refresh(stack: Stack, acme: Actor) -> None:
    await stack.advance(3600)  # the access token has expired on both sides
    results = await asyncio.gather(*(whoami(stack, acme.tenant_id) for _ in range(50)))
    assert results == [EXT] * 50
    assert len(await refreshes(stack)) == 1
    status = (await stack.api.get("/v1/rc/status", headers=acme.headers)).json()
    assert status["connected"] is True


async def test_expired_access_token_mid_call_is_refreshed_once_and_the_call_repeated(stack: Stack, acme: Actor) -> None:
    r = await stack.emu.post("/_emulator/tokens/expire", json={"extensionId": EXT})
    assert r.json()["expired"] == 1
    assert await whoami(stack, acme.tenant_id) == EXT
    assert len(await refreshes(stack)) == 1
    calls = await stack.requests("/restapi/v1.0/account/~/extension/~", "GET")
    assert [c["status"] for c in calls[-2:]] == [401, 200]


async def test_the_grace_window_answers_a_repeated_refresh_with_the_same_pair(stack: Stack, acme: Actor) -> None:
    ext = await stack.gw.store.connections.get_extension(acme.tenant_id, EXT)
    old_refresh = stack.gw.box.decrypt(ext.refresh_token_enc)
    first = await stack.gw.rc.refresh(old_refresh)
    second = await stack.gw.rc.refresh(old_refresh)
    assert (first.access_token, first.refresh_token) == (second.access_token, second.refresh_token)
    await stack.advance(11)
    with pytest.raises(ConnectionRevoked):
        await stack.gw.rc.refresh(old_refresh)


async def test_a_refresh_lost_before_it_was_saved_is_recovered_within_the_grace_window(
    stack: Stack, acme: Actor
) -> None:
    # Another node refreshed and died before saving: the stored refresh token is the old one.
    ext = await stack.gw.store.connections.get_extension(acme.tenant_id, EXT)
    await stack.gw.rc.refresh(stack.gw.box.decrypt(ext.refresh_token_enc))
    await stack.advance(5)
    stack.clock.advance(3600)  # the gateway now considers its token expired
    assert await whoami(stack, acme.tenant_id) == EXT
    status = (await stack.api.get("/v1/rc/status", headers=acme.headers)).json()
    assert status["connected"] is True


async def test_a_rejected_refresh_token_disconnects_and_never_loops(stack: Stack, acme: Actor) -> None:
    r = await stack.emu.post("/_emulator/tokens/revoke-refresh", json={"extensionId": EXT})
    assert r.json()["revoked"] == 1
    await stack.advance(3600)
    for _ in range(3):
        with pytest.raises(ProviderError) as info:
            await whoami(stack, acme.tenant_id)
        assert (info.value.message, info.value.code, info.value.retryable) == (
            "RingCentral not connected for this tenant",
            "not-connected",
            False,
        )
    assert len(await refreshes(stack)) == 1
    status = (await stack.api.get("/v1/rc/status", headers=acme.headers)).json()
    assert status["connected"] is False
    [item] = status["extensions"]
    assert item["status"] == "disconnected" and "Refresh token rejected" in item["error"]
    stored = await stack.gw.store.connections.get_extension(acme.tenant_id, EXT)
    assert stored.access_token_enc is None and stored.refresh_token_enc is None
    assert await stack.gw.store.connections.extension_subscriptions(acme.tenant_id, EXT) == []
    assert await stack.gw.connections.connected_extensions(acme.tenant_id) == []


async def test_no_connection_is_not_connected(stack: Stack) -> None:
    other = await actor(stack.gw, "Other")
    with pytest.raises(ProviderError) as info:
        await whoami(stack, other.tenant_id)
    assert info.value.code == "not-connected" and str(info.value.message) == "RingCentral not connected for this tenant"


async def test_transient_refresh_failure_is_retryable_and_keeps_the_connection(stack: Stack, acme: Actor) -> None:
    await stack.advance(3600)
    r = await stack.emu.post("/_emulator/faults", json={"serverError": {"path": "/restapi/oauth/token", "count": 1}})
    assert r.status_code == 200
    with pytest.raises(RefreshFailed) as info:
        await whoami(stack, acme.tenant_id)
    assert info.value.retryable and info.value.code != "not-connected"
    stack.clock.advance(REFRESH_BACKOFF_FIRST)
    assert await whoami(stack, acme.tenant_id) == EXT
    status = (await stack.api.get("/v1/rc/status", headers=acme.headers)).json()
    assert status["connected"] is True and status["extensions"][0]["error"] is None


async def test_a_failing_refresh_backs_off_instead_of_asking_again_for_every_call(stack: Stack, acme: Actor) -> None:
    await stack.advance(3600)
    r = await stack.emu.post("/_emulator/faults", json={"serverError": {"path": "/restapi/oauth/token", "count": 100}})
    assert r.status_code == 200
    waits = []
    for _ in range(4):
        for _ in range(5):  # many calls while it backs off: they fail at once, RingCentral is not asked
            with pytest.raises(RefreshFailed) as info:
                await whoami(stack, acme.tenant_id)
            assert info.value.retryable and info.value.retry_after is not None
        waits.append(info.value.retry_after)
        stack.clock.advance(info.value.retry_after)
    assert len(await refreshes(stack)) == 4  # one per backoff step, not one per call
    assert waits == sorted(waits) and waits[-1] > waits[0]  # 2 s, 4 s, 8 s …
    assert (await stack.emu.delete("/_emulator/faults")).status_code == 200
    assert await whoami(stack, acme.tenant_id) == EXT  # the next step's refresh succeeds
    stack.clock.advance(1)
    assert await whoami(stack, acme.tenant_id) == EXT  # and the backoff is over
    assert len(await refreshes(stack)) == 5


async def test_note_event_writes_at_most_every_ten_seconds(stack: Stack, acme: Actor) -> None:
    service = stack.gw.connections
    t0 = stack.clock.now()
    await service.note_event(acme.tenant_id, EXT, t0)
    stack.clock.advance(5)
    await service.note_event(acme.tenant_id, EXT, stack.clock.now())
    ext = await stack.gw.store.connections.get_extension(acme.tenant_id, EXT)
    assert ext.last_event_at == t0
    stack.clock.advance(6)
    await service.note_event(acme.tenant_id, EXT, stack.clock.now())
    ext = await stack.gw.store.connections.get_extension(acme.tenant_id, EXT)
    assert ext.last_event_at == stack.clock.now()
