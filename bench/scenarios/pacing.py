"""B6: outbound pacing against the emulator's real RingCentral rate limits.

One tenant connected on 2 extensions with 10 SMS numbers each (20 numbers). A backlog larger
than what RingCentral allows in the run is queued at once, spread over the 20 numbers; the
outbound worker then has to draw as much as the limits allow and no more. What the emulator
saw decides: its request log of SMS calls (status and time). The allowed rate is the Medium
group's 40 requests per 60 s per extension (ringcentral.md §6): 80 per minute for two
extensions, well under the gateway's own 40 per number per minute x 20 numbers.
Figure: accepted SMS per minute after the first minute, against 80; 429s after the first minute.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import httpx

from bench.report import Outcome
from bench.scenarios.api import EXT2, connected_stack
from bench.scenarios.common import Ctx, verdict
from bench.stack import NotAvailable

MEDIUM_PER_MINUTE = 40
NUMBERS = [f"+1555{e:03d}{n:04d}" for e in (1, 2) for n in range(10)]


def _parse(at: str) -> float:
    return datetime.fromisoformat(at.replace("Z", "+00:00")).timestamp()


def b6_pacing(ctx: Ctx) -> Outcome:
    seconds = 8.0 if ctx.quick else 150.0
    allowed_per_min = 2 * MEDIUM_PER_MINUTE
    out = Outcome(
        "B6",
        f"outbound pacing, 20 numbers on 2 extensions, {seconds:.0f} s against the emulator's limits",
        "≥ 95 % of the allowed rate; zero 429s after the first minute",
    )
    st, node, tenant, notes = connected_stack(ctx, "b6")
    with st:
        if notes:
            raise NotAvailable(notes[0])
        st.connect(node, tenant, EXT2, invite=True)
        assert st.emulator is not None
        backlog = int(allowed_per_min * seconds / 60 * 1.5) + 20
        with httpx.Client(timeout=30) as http:
            http.delete(f"{st.emulator.url}/_emulator/requests")
            t0 = time.time()
            for i in range(backlog):
                body = {"to": f"+1555777{i % 10000:04d}", "from": NUMBERS[i % len(NUMBERS)], "body": f"pacing {i}"}
                r = http.post(f"{node.url}/v1/sms/send", headers=tenant.headers, json=body)
                if r.status_code != 202:
                    raise RuntimeError(f"send answered {r.status_code}: {r.text[:200]}")
            time.sleep(max(0.0, seconds - (time.time() - t0)))
            log = http.get(f"{st.emulator.url}/_emulator/requests", params={"method": "POST"}).json()["requests"]
            t_end = time.time()
    sms = [r for r in log if r["path"].endswith("/sms")]
    start = min((_parse(r["at"]) for r in sms), default=t0)
    ok = [r for r in sms if r["status"] and 200 <= int(r["status"]) < 300]
    late = [r for r in sms if _parse(r["at"]) >= start + 60]
    late_429 = [r for r in late if r["status"] == 429]
    # Whole 60 s windows after the first minute: a sliding-window limit allows exactly 40 per
    # extension in each, whereas a partial window after a burst could hold more than its share.
    windows = max(int((t_end - start - 60) // 60), 0)
    late_ok = [r for r in ok if start + 60 <= _parse(r["at"]) < start + 60 + 60 * windows]
    per_min = len(late_ok) / windows if windows else len(ok) / max(t_end - start, 1e-6) * 60
    span = f"in {windows} whole minute(s) after the first" if windows else "over the whole (short) run"
    out.figure = (
        f"{per_min:.1f} SMS/min accepted {span}; {len(ok)} accepted, "
        f"{sum(1 for r in sms if r['status'] == 429)} x 429 in all, {len(late_429)} x 429 after the first minute"
    )
    out.baseline = f"allowed: {allowed_per_min} SMS/min (Medium group, 40 per extension)"
    out.ratio = round(per_min / allowed_per_min, 3)
    out.metrics = {
        "backlog": backlog,
        "sms_calls": len(sms),
        "accepted": len(ok),
        "late_accepted": len(late_ok),
        "late_429": len(late_429),
        "whole_windows": windows,
        "per_minute": round(per_min, 2),
        "statuses": _count(r["status"] for r in sms),
    }
    if ctx.quick:
        out.notes.append("quick run: shorter than the 60 s rate window, so the steady-state target cannot be judged")
        out.verdict = "MISS"
    else:
        out.verdict = verdict(out.ratio >= 0.95 and not late_429)
    return out


def _count(values: Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    for v in values:
        counts[str(v)] = counts.get(str(v), 0) + 1
    return counts
