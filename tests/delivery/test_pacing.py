"""Pacing gates (api.md §5 point 5, ringcentral.md §6) on a manual clock."""

from __future__ import annotations

from gravity_sms.broker.memory import MemoryRateLimiter
from gravity_sms.delivery.pacing import DEFAULT_PENALTY, WINDOW_MARGIN, ExtensionPacer, NumberLimit
from gravity_sms.domain.clock import ManualClock
from gravity_sms.domain.provider import RateInfo


async def test_number_limit_is_a_sliding_window_per_tenant_and_number() -> None:
    clock = ManualClock()
    limit = NumberLimit(MemoryRateLimiter(clock), per_window=40)
    for _ in range(40):
        assert await limit.acquire("t1", "+15550000001") == 0.0
        clock.advance(0.5)
    wait = await limit.acquire("t1", "+15550000001")
    assert 39 < wait <= 40.5  # the first slot frees 60 s after it was taken
    assert await limit.acquire("t1", "+15550000002") == 0.0, "another number has its own window"
    assert await limit.acquire("t2", "+15550000001") == 0.0, "another tenant's number too"
    clock.advance(wait)
    assert await limit.acquire("t1", "+15550000001") == 0.0
    assert await limit.acquire("t1", "+15550000001") > 0, "only one slot freed"


def test_pacer_stops_at_the_learned_limit_and_resumes_after_the_window() -> None:
    clock = ManualClock()
    pacer = ExtensionPacer(clock)
    pacer.observe("ext", RateInfo(group="Medium", limit=10, remaining=10, window=60))
    for _ in range(10):
        assert pacer.wait_time("ext") == 0
        pacer.reserve("ext")
        clock.advance(1)
    wait = pacer.wait_time("ext")
    assert wait == 60 + WINDOW_MARGIN - 10
    assert pacer.wait_time("other") == 0, "another extension is not held"
    clock.advance(wait)
    assert pacer.wait_time("ext") == 0


def test_pacer_honours_retry_after_and_the_default_penalty() -> None:
    clock = ManualClock()
    pacer = ExtensionPacer(clock)
    pacer.pause("ext", 42)
    assert pacer.wait_time("ext") == 42
    clock.advance(41.9)
    assert pacer.wait_time("ext") > 0
    clock.advance(0.1)
    assert pacer.wait_time("ext") == 0
    pacer.pause("ext", None)  # 429 without Retry-After
    assert pacer.wait_time("ext") == DEFAULT_PENALTY
    pacer.pause("ext", 5)  # a shorter pause never shortens a longer one
    assert pacer.wait_time("ext") == DEFAULT_PENALTY


def test_budget_used_elsewhere_pauses_a_whole_window() -> None:
    clock = ManualClock()
    pacer = ExtensionPacer(clock)
    pacer.reserve("ext")
    pacer.observe("ext", RateInfo(group="Medium", limit=40, remaining=0, window=60))
    assert pacer.wait_time("ext") == 60
