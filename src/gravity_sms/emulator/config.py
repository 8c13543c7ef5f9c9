"""The emulator's configuration: every behaviour RingCentral leaves uncertain is a knob here.

Owns only the settings object; builds nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx

# ringcentral.md §6: requests per user, per app, per group over a sliding 60 s window.
DEFAULT_RATE_LIMITS: dict[str, int] = {"Light": 50, "Medium": 40, "Heavy": 10, "Auth": 5}


@dataclass
class EmulatorConfig:
    """How the emulator behaves. Defaults follow ringcentral.md."""

    seed: dict[str, Any] | None = None
    # Consecutive failed event deliveries after which a subscription becomes Blacklisted.
    blacklist_after_failures: int = 3
    # Outbound SMS progression, both measured from the message's creation time.
    sent_after_seconds: float = 1.0
    delivered_after_seconds: float = 2.0
    # True: /restapi/oauth/authorize redirects at once; False: it shows an Approve/Deny page.
    auto_approve: bool = True
    enforce_rate_limits: bool = True
    # Base of every `uri` field the emulator writes.
    public_url: str = "http://127.0.0.1:9090"
    rate_limits: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_RATE_LIMITS))
    rate_limit_window_seconds: float = 60.0
    rate_limit_penalty_seconds: float = 60.0
    auth_code_ttl_seconds: float = 60.0
    # ringcentral.md §1: the old refresh token answers with the same new pair for about 10 s.
    refresh_grace_seconds: float = 10.0
    # ringcentral.md §1: about 5 live sessions per user per app; the oldest is ended past that.
    max_sessions_per_user_app: int = 5
    max_subscriptions_per_user_app: int = 30
    handshake_timeout_seconds: float = 3.0
    delivery_timeout_seconds: float = 3.0
    # Production RingCentral requires https webhook addresses (SUB-523); off by default here.
    require_https: bool = False
    # Period of the background ticker (status progression, expiry reminders) while served
    # with a lifespan; None disables it (control API `deliver-pending` still runs the work).
    tick_seconds: float | None = 1.0
    # Seed of the RNG behind probabilistic faults, so runs are repeatable.
    fault_seed: int = 0
    # The request and delivery logs keep this many newest entries (long stress runs).
    log_limit: int = 10000
    # Transport for handshakes and event deliveries (e.g. httpx.ASGITransport(gateway_app)
    # for in-process end-to-end tests). None: real network through httpx.
    webhook_transport: httpx.AsyncBaseTransport | None = None
