"""R2: an emulator fault storm on the SMS call: 20 % 5xx, 10 % 429 with Retry-After, 5 % hangs.

The emulator's route faults fire in order (the first that fires answers), so the configured
probabilities are conditional ones that yield those shares. What the emulator's request log
shows decides: every accepted message must end `sent`, `delivered` or `failed` (with an
error); none may be left `sending`; and no SMS call for an extension may arrive while a 429's
Retry-After for that extension is running (a 0.25 s allowance covers calls already in flight
when the 429 was answered).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx
from bench.report import Outcome
from bench.stack import Stack, wait_until

from stress.common import EXT1, TERMINAL, UNTHROTTLED_EMULATOR, SCtx, Sender, list_messages

RETRY_AFTER = 5
IN_FLIGHT = 0.25
STORM = {
    "seed": 11,
    "serverError": {"path": "*/sms", "method": "POST", "probability": 0.2, "status": 503},
    "rateLimit": {"path": "*/sms", "method": "POST", "probability": 0.125, "retryAfter": RETRY_AFTER},
    "hang": {"path": "*/sms", "method": "POST", "probability": 0.0695, "seconds": 3600},
}


def _t(at: str) -> float:
    return datetime.fromisoformat(at.replace("Z", "+00:00")).timestamp()


def retry_after_violations(calls: list[dict[str, Any]], retry_after: float, examples: list[str] | None = None) -> int:
    """SMS calls (one extension) that arrived while a 429's Retry-After was running."""
    calls = sorted(calls, key=lambda r: _t(r["at"]))
    violations = 0
    windows: list[tuple[float, float, str]] = []  # (from, until, the 429's time)
    for r in calls:
        t = _t(r["at"])
        # Calls that reached the server within IN_FLIGHT of the 429 were already on their way.
        inside = [w for w in windows if w[0] + IN_FLIGHT <= t < w[1]]
        if inside:
            violations += 1
            if examples is not None and len(examples) < 5:
                examples.append(
                    f"call at {r['at']} ({r['status']}) inside the Retry-After of the 429 at {inside[0][2]}"
                )
        if r["status"] == 429:
            windows.append((t, t + retry_after, r["at"]))
    return violations


def r2_fault_storm(ctx: SCtx) -> Outcome:
    n = ctx.size(300, 30)
    out = Outcome(
        "R2",
        f"fault storm on the SMS call (20 % 5xx, 10 % 429 + Retry-After {RETRY_AFTER} s, 5 % hangs), {n} sends",
        "all end sent/delivered/failed with a reason; none stuck in sending; Retry-After never violated",
    )
    with Stack("r2") as st:
        st.start_emulator(config=UNTHROTTLED_EMULATOR)
        tenant = st.create_tenant("Storm")
        st.extra_env["GRAVITY_SEND_RATE_PER_NUMBER"] = "1000000"
        node = st.start_gateway()
        st.connect(node, tenant, EXT1)
        assert st.emulator is not None
        with httpx.Client(timeout=30) as http:
            http.post(f"{st.emulator.url}/_emulator/faults", json=STORM).raise_for_status()
            http.delete(f"{st.emulator.url}/_emulator/requests")
        sender = Sender(lambda: node.url, tenant.key, n, "r2", threads=2).start()
        sender.join()
        ids = set(sender.accepted.values())

        def done() -> bool:
            msgs = list_messages(node, tenant, "outbound")
            return sum(1 for m in msgs if m["messageId"] in ids and m["status"] in TERMINAL) >= len(ids)

        # the retry schedule (2 s, 8 s, 30 s, 2 min, 5 min) bounds how long a message can take
        # plus Retry-After pauses and hang timeouts: 540 s proved short for 2 of 300 messages
        wait_until(done, 150 if ctx.quick else 720, 3.0)
        msgs = [m for m in list_messages(node, tenant, "outbound") if m["messageId"] in ids]
        gateway_log = node.proc.log_path.read_text(errors="replace") if node.proc.log_path.exists() else ""
        with httpx.Client(timeout=60) as http:
            log = http.get(f"{st.emulator.url}/_emulator/requests", params={"method": "POST"}).json()["requests"]
    calls = [r for r in log if r["path"].endswith("/sms")]
    statuses: dict[str, int] = {}
    for m in msgs:
        statuses[m["status"]] = statuses.get(m["status"], 0) + 1
    not_terminal = [m for m in msgs if m["status"] not in TERMINAL]
    evidence = [line for line in gateway_log.splitlines() if any(m["messageId"] in line for m in not_terminal)]
    sending = [m for m in msgs if m["status"] == "sending"]
    failed_without_reason = [m for m in msgs if m["status"] == "failed" and not m.get("error")]
    examples: list[str] = []
    violations = retry_after_violations(calls, RETRY_AFTER, examples)
    out.notes += examples[:3]
    answers: dict[str, int] = {}
    for r in calls:
        answers[str(r["status"])] = answers.get(str(r["status"]), 0) + 1
    out.figure = (
        f"{len(ids)} accepted → {statuses}; {len(not_terminal)} not terminal ({len(sending)} sending); "
        f"{len(failed_without_reason)} failed without a reason; {violations} calls inside a Retry-After"
    )
    out.baseline = f"{len(calls)} SMS calls at the emulator, answers {answers}"
    out.metrics = {
        "accepted": len(ids),
        "statuses": statuses,
        "not_terminal": len(not_terminal),
        "sending": len(sending),
        "failed_without_reason": len(failed_without_reason),
        "retry_after_violations": violations,
        "not_terminal_messages": [
            {k: m.get(k) for k in ("messageId", "status", "error", "createdAt", "updatedAt")} for m in not_terminal
        ],
        "not_terminal_log_lines": evidence[-10:],
        "emulator_answers": answers,
    }
    ok = ids and not not_terminal and not failed_without_reason and violations == 0
    out.verdict = "PASS" if ok else "MISS"
    return out
