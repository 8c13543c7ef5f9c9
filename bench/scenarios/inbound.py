"""B3 and B4: inbound SMS events → app webhooks, end to end, under an open-loop load.

Events are sent to `/v1/webhooks/ringcentral` at a fixed rate (500/s; the harness plays
RingCentral with the subscription's real Verification-Token). A receiver process records when
each app's delivery arrives; latency is arrival minus the event's *intended* send time
(CLOCK_MONOTONIC is shared by all processes on Linux), so a stall cannot hide.
The baseline is the same generator posting straight to the receiver (the bare path).
B4 adds a fourth app whose endpoint hangs past the webhook timeout and watches the others'
p99 and the gateway's memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import resource
import threading
import time
from typing import Any

import httpx

from bench.loadgen import open_loop, percentile
from bench.procs import CpuMeter
from bench.report import Outcome
from bench.scenarios.api import EXT1, NUMBER1, connected_stack
from bench.scenarios.common import Ctx, event_body, ms, profiled, verdict
from bench.stack import NotAvailable, Stack, wait_until

APPS = ("a0", "a1", "a2")
LOW_RATE = 50.0


def _rate_duration(ctx: Ctx) -> tuple[float, float]:
    return (100.0, 1.5) if ctx.quick else (500.0, 20.0)


def _generate(url: str, rate: float, duration: float, body: str, headers: dict[str, str]) -> tuple[Any, float]:
    """Runs the open-loop generator in this process; answers (run, its CPU share in cores)."""
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    run = asyncio.run(open_loop(url, rate=rate, duration=duration, body=body, headers=headers, prefix="77"))
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime) / max(run.duration_s, 1e-6)
    return run, round(cpu, 2)


def _records(receiver_url: str) -> list[tuple[str, str, float]]:
    return [tuple(r) for r in httpx.get(f"{receiver_url}/_dump", timeout=30).json()["records"]]  # type: ignore[misc]


def _latencies(
    sent: dict[str, float], records: list[tuple[str, str, float]], names: tuple[str, ...], intended: int = 0
) -> dict[str, Any]:
    by_app: dict[str, list[float]] = {n: [] for n in names}
    seen: dict[str, set[str]] = {n: set() for n in names}
    dup = 0
    for name, key, t in records:
        if name in by_app and key in sent:
            if key in seen[name]:
                dup += 1
                continue
            seen[name].add(key)
            by_app[name].append((t - sent[key]) * 1000)
    all_ms = sorted(x for v in by_app.values() for x in v)
    return {
        "expected": max(intended, len(sent)) * len(names),
        "received": len(all_ms),
        "duplicates": dup,
        "p50": percentile(all_ms, 50),
        "p99": percentile(all_ms, 99),
        "max": all_ms[-1] if all_ms else float("nan"),
        "curve": [(p, round(percentile(all_ms, p), 3)) for p in (*range(1, 100), 99.5, 99.9)],
    }


def _direct_baseline(ctx: Ctx) -> dict[str, Any]:
    if "b3_direct" in ctx.cache:
        return dict(ctx.cache["b3_direct"])
    rate, duration = _rate_duration(ctx)
    with Stack("b3-direct") as st:
        receiver = st.start_reference("receiver")
        body = '{"type":"sms_inbound","rcMessageId":"__ID__","body":"Hey, is my appointment still on?"}'
        run, _ = _generate(f"{receiver.url}/hook/direct", rate, duration, body, {})
        wait_until(lambda: len(_records(receiver.url)) >= len(run.sent), 10)
        result = _latencies(run.sent, _records(receiver.url), ("direct",))
    ctx.cache["b3_direct"] = result
    return result


class RssSampler:
    def __init__(self, pid_of: Any, every: float = 0.5) -> None:
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._pid_of, self._every = pid_of, every
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        from bench.procs import rss_bytes

        t0 = time.monotonic()
        while not self._stop.is_set():
            self.samples.append((time.monotonic() - t0, rss_bytes(self._pid_of())))
            self._stop.wait(self._every)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _fanout_run(
    ctx: Ctx, name: str, *, hanging: bool, rate: float | None = None, out: Outcome | None = None
) -> dict[str, Any]:
    default_rate, duration = _rate_duration(ctx)
    rate = rate or default_rate
    paths = [f"/hook/{a}" for a in APPS] + (["/hang/h"] if hanging else [])
    st, node, _tenant, notes = connected_stack(ctx, name, webhook_paths=paths)
    with st:
        if notes:
            raise NotAvailable(notes[0])
        receiver = st.receiver
        assert receiver is not None
        sub, token = st.verification_token(NUMBER1)
        wait_until(lambda: len(_records(receiver.url)) >= len(paths), 10)
        httpx.delete(f"{receiver.url}/_dump", timeout=10)
        body = event_body(sub, EXT1, NUMBER1)
        meter = CpuMeter({"gateway": node.proc.pid, "receiver": receiver.proc.pid})
        probe = profiled(ctx, out, node.proc.pid, duration) if out is not None else contextlib.nullcontext()
        with RssSampler(lambda: node.proc.pid) as rss, probe:
            run, gen_cpu = _generate(
                f"{node.url}/v1/webhooks/ringcentral", rate, duration, body, {"Verification-Token": token}
            )
            expected = len(run.sent) * len(APPS)
            wait_until(lambda: sum(1 for r in _records(receiver.url) if r[0] in APPS) >= expected, 15, 0.25)
        cpu = meter.shares()
        result = _latencies(run.sent, _records(receiver.url), APPS, run.intended)
        acks = sorted(x * 1000 for x in run.ack_latency_s)
        result |= {
            "ack_p99": percentile(acks, 99),
            "acked": run.ok,
            "non_2xx": run.non_2xx,
            "errors": run.errors,
            "statuses": run.statuses,
            "cpu": cpu | {"generator": gen_cpu},
            "rss_mb": [(round(t, 1), round(b / 1e6, 1)) for t, b in rss.samples],
            "sent": len(run.sent),
            "intended": run.intended,
        }
        return result


def _fill(out: Outcome, result: dict[str, Any], direct: dict[str, Any]) -> None:
    out.figure = (
        f"p50 {ms(result['p50'])}, p99 {ms(result['p99'])} end to end; "
        f"{result['received']:,}/{result['expected']:,} deliveries; ack p99 {ms(result['ack_p99'])}; "
        f"{result['acked']:,} of {result['intended']:,} scheduled events acknowledged"
    )
    out.baseline = f"direct to receiver: p50 {ms(direct['p50'])}, p99 {ms(direct['p99'])}"
    out.ratio = round(result["p99"] / direct["p99"], 2) if direct["p99"] else None
    out.curves = {"gateway → 3 apps": result["curve"], "direct to receiver": direct["curve"]}
    out.metrics |= {k: v for k, v in result.items() if k != "curve"} | {
        "direct": {k: v for k, v in direct.items() if k != "curve"}
    }
    if result["received"] < result["expected"]:
        out.notes.append(f"{result['expected'] - result['received']} deliveries never arrived")
    if result["non_2xx"] or result["errors"]:
        out.notes.append(f"{result['non_2xx']} non-2xx acks, {result['errors']} socket errors: {result['statuses']}")


def b3_fanout(ctx: Ctx) -> Outcome:
    rate, _ = _rate_duration(ctx)
    out = Outcome("B3", f"inbound → 3 app webhooks at {rate:.0f} events/s", "p50 ≤ 20 ms, p99 ≤ 100 ms end to end")
    direct = _direct_baseline(ctx)
    result = _fanout_run(ctx, "b3", hanging=False, out=out)
    ctx.cache["b3"] = result
    _fill(out, result, direct)
    complete = result["received"] == result["expected"] and result["non_2xx"] == 0 and result["errors"] == 0
    out.verdict = verdict(complete and result["p50"] <= 20 and result["p99"] <= 100)
    if result["acked"] < 0.9 * result["intended"] and not ctx.quick:
        # Overloaded: also show what the path does below saturation, for whoever fixes it.
        low = _fanout_run(ctx, "b3-low", hanging=False, rate=LOW_RATE)
        out.metrics["at_low_rate"] = {k: v for k, v in low.items() if k != "curve"} | {"rate": LOW_RATE}
        out.curves[f"gateway at {LOW_RATE:.0f} events/s"] = low["curve"]
        out.notes.append(
            f"overloaded at {rate:.0f}/s; at {LOW_RATE:.0f} events/s: p50 {ms(low['p50'])}, p99 {ms(low['p99'])}, "
            f"{low['received']:,}/{low['expected']:,} deliveries, ack p99 {ms(low['ack_p99'])}"
        )
    return out


def b4_hanging(ctx: Ctx) -> Outcome:
    rate, _ = _rate_duration(ctx)
    out = Outcome(
        "B4",
        f"as B3 plus a 4th app hanging past the 5 s timeout, {rate:.0f} events/s",
        "other apps' p99 ≤ 1.2 x B3's; gateway RSS flat",
    )
    direct = _direct_baseline(ctx)
    if "b3" not in ctx.cache:
        ctx.cache["b3"] = _fanout_run(ctx, "b3", hanging=False)
    b3 = ctx.cache["b3"]
    result = _fanout_run(ctx, "b4", hanging=True)
    _fill(out, result, direct)
    out.baseline = f"B3 p99 {ms(b3['p99'])} (same run); direct p99 {ms(direct['p99'])}"
    out.ratio = round(result["p99"] / b3["p99"], 2) if b3["p99"] else None
    samples = [mb for _, mb in result["rss_mb"] if mb > 0]
    half = samples[len(samples) // 2 :] or [0.0]
    growth = (half[-1] - half[0]) / half[0] if half[0] else 0.0
    out.metrics["rss_growth_second_half"] = round(growth, 3)
    out.figure += f"; RSS {samples[0] if samples else 0:.0f} → {max(samples or [0]):.0f} → {samples[-1] if samples else 0:.0f} MB (start/peak/end)"
    out.curves["B3 (no hanging app)"] = b3["curve"]
    complete = result["received"] == result["expected"] and result["non_2xx"] == 0
    if b3["p99"] > 100:
        out.notes.append("B3 itself missed its target: this compares two overloaded runs, so read it with care")
    flat = growth <= 0.05
    if not flat:
        out.notes.append(f"RSS grew {growth:.0%} over the second half of the run")
    out.verdict = verdict(complete and out.ratio is not None and out.ratio <= 1.2 and flat)
    return out
