"""Body splitting (api.md §5 point 3) and the outbound state machine and validation rules."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gravity_sms.domain.errors import ValidationFailed
from gravity_sms.domain.outbound import (
    MAX_ATTEMPTS,
    RETRY_DELAYS,
    can_move,
    retry_delay,
    split_body,
    utf16_units,
    validate_idempotency_key,
    validate_send,
)

bodies = st.text(
    alphabet=st.one_of(
        st.characters(codec="utf-8", exclude_categories=("Cs",)),
        st.sampled_from([" ", "\n", "😀", "𝄞", "é", "a"]),
    ),
    max_size=1600,
)


@settings(max_examples=300, deadline=None)
@given(bodies)
def test_parts_rejoin_and_fit(body: str) -> None:
    parts = split_body(body)
    assert "".join(parts) == body
    assert all(utf16_units(p) <= 1000 for p in parts)
    assert all(parts) or body == ""
    # Every part is valid text on its own: no lone surrogate half at either edge.
    for part in parts:
        part.encode("utf-16-le", errors="strict")


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(alphabet="abcdefghij😀", min_size=1, max_size=30), min_size=1, max_size=120))
def test_splits_at_whitespace_when_there_is_one(words: list[str]) -> None:
    body = " ".join(words)
    parts = split_body(body)
    for part in parts[:-1]:
        # A part ends with the space after a word unless one word alone overflows a part.
        assert part.endswith(" ") or " " not in part


def test_short_body_is_one_part() -> None:
    assert split_body("hello") == ["hello"]
    assert split_body("x" * 1000) == ["x" * 1000]
    assert split_body("😀" * 500) == ["😀" * 500]


def test_1500_characters_of_words() -> None:
    body = ("lorem ipsum " * 200)[:1500]
    first, second = split_body(body)
    assert first.endswith(" ") and utf16_units(first) <= 1000
    assert first + second == body


def test_emoji_never_split_in_half() -> None:
    body = "a" + "😀" * 999  # 1 + 1998 units: the 1000th unit would cut a pair
    parts = split_body(body)
    assert parts[0] == "a" + "😀" * 499 and utf16_units(parts[0]) == 999
    assert "".join(parts) == body


def test_state_machine_never_moves_backwards() -> None:
    allowed = {
        ("queued", "sending"),
        ("queued", "failed"),
        ("sending", "sending"),
        ("sending", "sent"),
        ("sending", "failed"),
        ("sent", "delivered"),
        ("sent", "failed"),
    }
    statuses = ["queued", "sending", "sent", "delivered", "failed"]
    for a in statuses:
        for b in statuses:
            assert can_move(a, b) == ((a, b) in allowed), (a, b)


def test_backoff_schedule_with_jitter_and_retry_after() -> None:
    rng = random.Random(1)
    assert MAX_ATTEMPTS == 6
    for attempt, base in enumerate(RETRY_DELAYS, start=1):
        for _ in range(50):
            assert base * 0.8 <= retry_delay(attempt, rng=rng) <= base * 1.2
    assert retry_delay(1, retry_after=45, rng=rng) == 45
    assert retry_delay(5, retry_after=1, rng=rng) >= 240


@pytest.mark.parametrize("key", ["a", "~" * 255, "order:42/x", "!"])
def test_good_idempotency_keys(key: str) -> None:
    assert validate_idempotency_key(key) == key


@pytest.mark.parametrize("key", ["", " ", "a b", "x" * 256, "é", "\x7f"])
def test_bad_idempotency_keys(key: str) -> None:
    with pytest.raises(ValidationFailed, match="Idempotency-Key must be 1-255 visible ASCII characters"):
        validate_idempotency_key(key)


def test_body_length_counts_characters() -> None:
    assert validate_send({"to": "+15551234567", "from": "+15551234568", "body": "😀" * 1600}).body == "😀" * 1600
    with pytest.raises(ValidationFailed, match="body must be 1-1600 characters"):
        validate_send({"to": "+15551234567", "from": "+15551234568", "body": "😀" * 1601})


def test_fingerprint_covers_every_field() -> None:
    base = {"to": "+15551234567", "from": "+15551234568", "body": "hi"}
    prints = {
        validate_send(v).fingerprint()
        for v in (base, {**base, "body": "hi "}, {**base, "userId": "u"}, {**base, "to": "+15551234569"})
    }
    assert len(prints) == 4
    assert validate_send(dict(base)).fingerprint() == validate_send(base).fingerprint()
