"""LogThrottle: one line per key per interval, with the count of lines kept quiet."""

from __future__ import annotations

from gravity_sms.telemetry import LogThrottle


def test_one_line_per_key_per_interval_with_the_suppressed_count() -> None:
    now = [100.0]
    throttle = LogThrottle(every=10, size=2, clock=lambda: now[0])
    assert throttle.admit("a") == 0
    assert [throttle.admit("a") for _ in range(3)] == [None, None, None]
    assert throttle.admit("b") == 0  # keys are independent
    now[0] += 10
    assert throttle.admit("a") == 3  # the next line says how many were kept quiet
    assert throttle.admit("a") is None
    throttle.admit("c")  # past `size`: the least recent key ("b") is forgotten
    assert throttle.admit("b") == 0
