"""Fixtures for the outbound pipeline: a real-time manual clock, the emulator, connected tenants."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from gravity_sms.domain.clock import ManualClock
from gravity_sms.settings import Settings
from tests.delivery.rig import EXT_A, EXT_B, Emulator, Pipeline, connect, pipeline, running_emulator


@pytest.fixture
def clock() -> ManualClock:
    # The emulator keeps wall time: start the gateway's manual clock there so message-store
    # date filters and token expiries agree; from then on only the test moves it.
    return ManualClock(datetime.now(UTC))


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    async with running_emulator() as emu:
        yield emu


@pytest.fixture
def settings(tmp_path: Path, emulator: Emulator) -> Settings:
    return Settings(
        env="test",
        data_dir=tmp_path,
        rc_server_url=emulator.url,
        rc_client_id="test-client",
        rc_client_secret="test-secret",
        public_url="http://gateway.test",
        _env_file=None,
    )  # type: ignore[call-arg]


@pytest.fixture
async def rig(gateway: Any, emulator: Emulator) -> AsyncIterator[Pipeline]:
    async with pipeline(gateway, emulator) as p:
        yield p


@pytest.fixture
async def connected(gateway: Any, emulator: Emulator, tenant_a: Any, tenant_b: Any) -> tuple[Any, Any]:
    """tenant_a owns extension A (two SMS numbers and a voice-only one); tenant_b extension B."""
    await connect(gateway, emulator, tenant_a.tenant_id, EXT_A)
    await connect(gateway, emulator, tenant_b.tenant_id, EXT_B)
    return tenant_a, tenant_b
