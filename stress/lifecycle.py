"""R5: subscription and token disasters, and a RingCentral outage with backfill.

Four tenants, each connected on its own extension, on one gateway in real time:
1. outage: every `/restapi/*` call answers 503 for a while (180 s; quality.md names 10 min,
   scaled down to keep `make stress` bounded), while inbound SMS for tenant 4 arrive at
   RingCentral without being delivered (the webhook path is down too). Counted: the gateway's
   calls per second during the outage (a hot loop shows at once) and, afterwards, whether the
   missed SMS are backfilled;
2. then tenant 1's subscription is blacklisted and tenant 2's vanishes, each followed by an
   inbound SMS that RingCentral therefore never delivers: they must be re-created and the SMS
   backfilled;
3. tenant 3's refresh token is revoked and its access token expired, then it sends one SMS:
   `/v1/rc/status` must show it disconnected, with no refresh hot loop.
The wait is bounded (16 min: the scheduler verifies subscriptions every 10 min and backfills
every 15 min as a safety net); each recovery's time is reported.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
from bench.report import Outcome
from bench.stack import Stack, Tenant

from stress.common import SCtx

EXTS = [f"40211823{e:04d}" for e in (1, 2, 3, 4)]
NUMBERS = [f"+1555{e:03d}0000" for e in (1, 2, 3, 4)]


def _stored_texts(node: Any, tenant: Tenant) -> set[str]:
    r = httpx.get(
        f"{node.url}/v1/sms/messages", params={"direction": "inbound", "limit": 100}, headers=tenant.headers, timeout=30
    )
    return {m["body"] for m in r.json().get("messages", [])} if r.status_code == 200 else set()


def _active_sub(st: Stack, ext: str, exclude: set[str]) -> bool:
    return any(
        str(s.get("extensionId")) == ext
        and s.get("status") == "Active"
        and not s.get("expired")
        and s["id"] not in exclude
        for s in st.emulator_state()["subscriptions"]
    )


def _disconnected(node: Any, tenant: Tenant) -> bool:
    r = httpx.get(f"{node.url}/v1/rc/status", headers=tenant.headers, timeout=30)
    if r.status_code != 200:
        return False
    data = r.json()
    if not data.get("connected"):
        return True
    return all(e.get("status") not in (None, "connected", "active") for e in data.get("extensions", []))


def r5_disasters(ctx: SCtx) -> Outcome:
    outage_s = 20.0 if ctx.quick else 180.0
    wait_s = 60.0 if ctx.quick else 960.0
    out = Outcome(
        "R5",
        f"RingCentral outage ({outage_s:.0f} s), blacklisted and vanished subscriptions, rejected refresh token",
        "re-created automatically; missed inbound backfilled; disconnected shown; never a hot loop",
    )
    with Stack("r5") as st:
        st.start_emulator(extensions=4, numbers=2)
        assert st.emulator is not None
        emu = st.emulator.url
        tenants = [st.create_tenant(f"Life{i}") for i in range(4)]
        node = st.start_gateway()
        for tenant, ext in zip(tenants, EXTS, strict=True):
            st.connect(node, tenant, ext)
        subs = {str(s["extensionId"]): s["id"] for s in st.emulator_state()["subscriptions"]}
        http = httpx.Client(timeout=30)
        # 1. outage
        http.delete(f"{emu}/_emulator/requests")
        http.post(f"{emu}/_emulator/faults", json={"serverError": {"path": "/restapi/*", "probability": 1.0}})
        t0 = time.monotonic()
        missed4 = []
        while time.monotonic() - t0 < outage_s:
            text = f"missed during outage {len(missed4)}"
            http.post(
                f"{emu}/_emulator/inbound?deliver=false", json={"from": "+15551230000", "to": NUMBERS[3], "text": text}
            )
            missed4.append(text)
            time.sleep(5.0)
        outage_calls = http.get(f"{emu}/_emulator/requests").json()["requests"]
        http.delete(f"{emu}/_emulator/faults")
        calls_per_s = len(outage_calls) / outage_s
        # 2. subscription disasters, each followed by an inbound SMS RingCentral cannot deliver
        http.post(f"{emu}/_emulator/subscriptions/{subs[EXTS[0]]}/blacklist", json={})
        http.delete(f"{emu}/_emulator/subscriptions/{subs[EXTS[1]]}")
        for number, tag in ((NUMBERS[0], "after blacklist"), (NUMBERS[1], "after vanish")):
            http.post(f"{emu}/_emulator/inbound", json={"from": "+15551230000", "to": number, "text": tag})
        # 3. refresh token rejected
        http.delete(f"{emu}/_emulator/requests")
        http.post(f"{emu}/_emulator/tokens/revoke-refresh", json={"extensionId": EXTS[2]})
        http.post(f"{emu}/_emulator/tokens/expire", json={"extensionId": EXTS[2]})
        http.post(
            f"{node.url}/v1/sms/send",
            headers=tenants[2].headers,
            json={"to": "+15558880000", "from": NUMBERS[2], "body": "after revoke"},
        )
        t1 = time.monotonic()
        recovered: dict[str, float | None] = dict.fromkeys(
            (
                "blacklisted re-created",
                "vanished re-created",
                "blacklist SMS backfilled",
                "vanish SMS backfilled",
                "outage SMS backfilled",
                "refresh rejection shown",
            ),
            None,
        )
        checks = {
            "blacklisted re-created": lambda: _active_sub(st, EXTS[0], {subs[EXTS[0]]}),
            "vanished re-created": lambda: _active_sub(st, EXTS[1], {subs[EXTS[1]]}),
            "blacklist SMS backfilled": lambda: "after blacklist" in _stored_texts(node, tenants[0]),
            "vanish SMS backfilled": lambda: "after vanish" in _stored_texts(node, tenants[1]),
            "outage SMS backfilled": lambda: set(missed4) <= _stored_texts(node, tenants[3]),
            "refresh rejection shown": lambda: _disconnected(node, tenants[2]),
        }
        while time.monotonic() - t1 < wait_s and any(v is None for v in recovered.values()):
            for name, check in checks.items():
                if recovered[name] is None and check():
                    recovered[name] = round(time.monotonic() - t1, 1)
            time.sleep(5.0)
        window = time.monotonic() - t1
        token_calls = [
            r for r in http.get(f"{emu}/_emulator/requests").json()["requests"] if r["path"] == "/restapi/oauth/token"
        ]
        http.close()
    refresh_per_min = len(token_calls) / window * 60
    done = {k: v for k, v in recovered.items() if v is not None}
    out.figure = (
        f"{len(done)}/{len(recovered)} recovered: "
        + ", ".join(
            f"{k} {'in ' + str(v) + ' s' if v is not None else 'NOT within ' + str(int(wait_s)) + ' s'}"
            for k, v in recovered.items()
        )
        + f"; {calls_per_s:.2f} calls/s to RingCentral during the outage; {len(token_calls)} token calls in {window:.0f} s after the revoke"
    )
    out.baseline = (
        "4 connected extensions; scheduler pass every 30 s, subscription check every 10 min, backfill every 15 min"
    )
    out.metrics = {
        "recovered_after_s": recovered,
        "outage_calls": len(outage_calls),
        "outage_calls_per_s": round(calls_per_s, 3),
        "token_calls_after_revoke": len(token_calls),
        "token_calls_per_min": round(refresh_per_min, 2),
        "missed_during_outage": len(missed4),
    }
    no_hot_loop = calls_per_s <= 1.0 and refresh_per_min <= 2.0
    if not no_hot_loop:
        out.notes.append(
            "hot loop: more than 1 call/s during the outage or more than 2 token calls/min after the revoke"
        )
    if ctx.quick:
        out.notes.append(
            "quick run: the wait is far shorter than the scheduler's periods, so recoveries may be missing"
        )
    out.verdict = "PASS" if no_hot_loop and len(done) == len(recovered) else "MISS"
    return out
