"""Fixtures for the outbound pipeline: the emulator, the worker over it, connected tenants.

Tests that use them also import `clock` and `settings` from tests/delivery/rig.py (a manual clock
starting at wall time, settings pointing at the emulator); those are not overridden here so
that other tests in this directory keep the shared defaults."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.delivery.rig import EXT_A, EXT_B, Emulator, Pipeline, connect, pipeline, running_emulator


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    async with running_emulator() as emu:
        yield emu


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
