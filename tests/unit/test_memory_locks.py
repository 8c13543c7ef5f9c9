"""The in-process lock manager keeps the port's promise: `lock()` waits at most `ttl`."""

from __future__ import annotations

import asyncio

from gravity_sms.broker.memory import MemoryLockManager


async def test_lock_gives_up_after_ttl_while_another_holds_it() -> None:
    locks = MemoryLockManager()
    async with locks.lock("busy") as first:
        assert first is True
        async with locks.lock("busy", ttl=0.05) as second:
            assert second is False
    async with locks.lock("busy", ttl=0.05) as third:
        assert third is True


async def test_lock_is_exclusive_between_tasks() -> None:
    locks = MemoryLockManager()
    inside = 0
    peak = 0

    async def worker() -> None:
        nonlocal inside, peak
        async with locks.lock("one", ttl=5.0) as held:
            assert held
            inside += 1
            peak = max(peak, inside)
            await asyncio.sleep(0)
            inside -= 1

    await asyncio.gather(*(worker() for _ in range(20)))
    assert peak == 1
