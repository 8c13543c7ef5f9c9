"""Schemathesis hooks for R6 (loaded through `SCHEMATHESIS_HOOKS`).

Schemathesis' negative cases present bad API keys, and the gateway's brute-force guard blocks a
client address after 10 failed authentications. R6 runs the gateway with
`GRAVITY_TRUST_PROXY=true`, and this hook gives every request its own `X-Forwarded-For`
address (the gateway takes the last hop), so no case is answered 429 because of earlier ones
and every operation's logic is reached.
"""

from __future__ import annotations

import itertools
from typing import Any

import schemathesis

_counter = itertools.count(1)


def next_address() -> str:
    """A fresh address in 10.0.0.0/8 for each call (16.7 million before it wraps)."""
    n = next(_counter) % (1 << 24)
    return f"10.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}"


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    headers = dict(case.headers or {})
    headers["X-Forwarded-For"] = next_address()
    case.headers = headers
