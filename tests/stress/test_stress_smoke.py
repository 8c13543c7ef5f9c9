"""Smoke runs of the reliability suites (`python -m stress.run --quick`) with tiny sizes.

They check that the suites still run against real processes and end in a figure and a
verdict computed from what was counted; they never assert the verdict itself (the suites,
on a quiet machine, do that), except where a suite's counting logic is checked directly."""

from __future__ import annotations

import os

import pytest
from stress.common import SCtx, duplicates
from stress.faults import retry_after_violations

from bench import report

pytestmark = pytest.mark.slow


def test_webhook_fuzzer_suite_ends_in_a_figure_and_verdict() -> None:
    from stress.fuzz import r6_fuzz

    outcome = r6_fuzz(SCtx(quick=True, tiny=True))  # the fuzzer half; schemathesis takes minutes
    assert outcome.verdict in report.VERDICTS and outcome.verdict != "ERROR", outcome.notes
    fuzz = outcome.metrics["webhook_fuzz"]
    assert fuzz["examples"] > 0 and sum(fuzz["answers"].values()) == fuzz["examples"]
    assert "webhook fuzzer" in outcome.figure


@pytest.mark.postgres
@pytest.mark.redis
def test_duplicate_events_across_nodes_are_counted() -> None:
    if not (os.environ.get("GRAVITY_TEST_POSTGRES_URL") and os.environ.get("GRAVITY_TEST_REDIS_URL")):
        pytest.skip("R3 needs PostgreSQL and Redis: set GRAVITY_TEST_POSTGRES_URL and GRAVITY_TEST_REDIS_URL")
    from stress.cluster import r3_duplicates

    outcome = r3_duplicates(SCtx(quick=True, tiny=True))
    assert outcome.verdict in ("PASS", "MISS")
    m = outcome.metrics
    assert m["copies"] >= m["events"] > 0
    assert "stored once" in outcome.figure


def test_retry_after_accounting_catches_an_early_call() -> None:
    calls = [
        {"at": "2026-03-01T14:30:00.000Z", "status": 429},
        {"at": "2026-03-01T14:30:00.100Z", "status": 200},  # already in flight: excused
        {"at": "2026-03-01T14:30:02.000Z", "status": 200},  # 2 s into a 5 s Retry-After
        {"at": "2026-03-01T14:30:06.000Z", "status": 200},
    ]
    assert retry_after_violations(calls, 5) == 1
    assert retry_after_violations([calls[0], calls[1], calls[3]], 5) == 0


def test_duplicate_counting() -> None:
    assert duplicates(["a", "b", "a", "a"]) == 2
    assert duplicates([]) == 0


def test_r6_hook_gives_every_request_its_own_client_address() -> None:
    from types import SimpleNamespace

    from stress.r6_hooks import before_call

    from gravity_sms.api.auth import pick_ip

    seen: set[str] = set()
    for headers in ({"Authorization": "Bearer bad"}, None, {"X-Forwarded-For": "10.0.0.1"}, {}):
        case = SimpleNamespace(headers=headers)
        before_call(None, case, {})
        assert case.headers is not None and "X-Forwarded-For" in case.headers
        seen.add(pick_ip(case.headers["X-Forwarded-For"], "127.0.0.1"))
    assert len(seen) == 4 and "127.0.0.1" not in seen
