"""`python -m bench.run [--quick] [--only B1,B2] [--python-loadgen] [--results DIR] [--no-doc]`

Runs the benchmark scenarios of quality.md §1, each against a baseline measured in the same
run, prints figure / baseline / ratio / verdict per scenario with the machine facts, and
writes bench/results/<date>.json, PNG latency plots and the table in docs/benchmarks.md.
`--quick` runs every scenario with tiny sizes (seconds): figures, never targets, are its point.
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from bench import report
from bench.loadgen import wrk_path
from bench.procs import REPO
from bench.report import Outcome
from bench.scenarios import api
from bench.scenarios.common import Ctx
from bench.stack import NotAvailable

Scenario = Callable[[Ctx], Outcome]


def _registry() -> dict[str, tuple[str, Scenario]]:
    from bench.scenarios import inbound, listing, pacing, ws

    return {
        "B0": ("baseline", api.baseline),
        "B8": ("idle", api.b8_idle),
        "B1": ("send", api.b1_send),
        "B2": ("webhook", api.b2_webhook),
        "B7": ("listing", listing.b7_listing),
        "B3": ("fan-out", inbound.b3_fanout),
        "B4": ("fan-out with a hanging app", inbound.b4_hanging),
        "B5": ("websocket", ws.b5_websocket),
        "B6": ("pacing", pacing.b6_pacing),
        # not in quality.md: the same hot paths on PostgreSQL, to tell the database from the code
        "B1PG": ("send on PostgreSQL", lambda ctx: api.b1_send(ctx, "postgres")),
        "B2PG": ("webhook on PostgreSQL", lambda ctx: api.b2_webhook(ctx, "postgres")),
    }


OPT_IN = {"B1PG", "B2PG"}  # run only when named in --only


def run(
    quick: bool,
    only: list[str] | None,
    prefer_wrk: bool = True,
    profile: bool = False,
    duration: float | None = None,
) -> list[Outcome]:
    registry = _registry()
    wanted = [k for k in registry if (only is None and k not in OPT_IN) or (only is not None and k in only)]
    if any(k in wanted for k in ("B1", "B2", "B1PG", "B2PG")) and "B0" not in wanted:
        wanted.insert(0, "B0")
    ctx = Ctx(quick=quick, prefer_wrk=prefer_wrk, profile=profile, duration_override=duration)
    outcomes = []
    for key in wanted:
        title, fn = registry[key]
        t0 = time.perf_counter()
        print(f"... {key} {title}", flush=True)
        try:
            outcome = fn(ctx)
        except NotAvailable as exc:
            outcome = Outcome(key, title, "-", verdict="N/A", notes=[f"not measurable yet: {exc}"])
        except Exception as exc:
            traceback.print_exc()
            outcome = Outcome(key, title, "-", verdict="ERROR", notes=[f"{type(exc).__name__}: {exc}"[:300]])
        outcome.seconds = round(time.perf_counter() - t0, 1)
        print(outcome.line(), flush=True)
        _print_profile(outcome)
        outcomes.append(outcome)
    return outcomes


def _print_profile(outcome: Outcome) -> None:
    prof = outcome.metrics.get("profile")
    if not prof:
        return
    if "error" in prof:
        print(f"      profile:  {prof['error']}")
        return
    print(f"      profile:  {prof.get('samples', 0)} samples, {prof.get('folded')}")
    for name, pct in prof.get("project_inclusive", [])[:10]:
        print(f"        {pct:5.1f}% incl  {name}")
    for name, pct in prof.get("self", [])[:8]:
        print(f"        {pct:5.1f}% self  {name}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n\n")[1])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks the harness, not the targets")
    parser.add_argument("--only", default=None, help="comma-separated scenario ids, e.g. B1,B2")
    parser.add_argument("--python-loadgen", action="store_true", help="use the Python generator even if wrk exists")
    parser.add_argument("--results", default=None, help="directory for the JSON and PNG results")
    parser.add_argument("--profile", action="store_true", help="py-spy the gateway during B1/B2/B3 loads")
    parser.add_argument("--no-doc", action="store_true", help="do not update docs/benchmarks.md")
    args = parser.parse_args(argv)
    only = [s.strip().upper() for s in args.only.split(",")] if args.only else None
    prefer_wrk = not args.python_loadgen and wrk_path() is not None
    generator = (
        "wrk -t1 (closed loop), asyncio open-loop client for B3/B4/B5"
        if prefer_wrk
        else "python (multi-process asyncio)"
    )
    if args.results:
        report.RESULTS = Path(args.results)
    facts = report.machine_facts(generator)
    report.print_header(facts)
    if not prefer_wrk and not args.python_loadgen:
        print("wrk is not installed: using the Python load generator (slower; see B0 for its ceiling)\n")
    t0 = time.perf_counter()
    outcomes = run(args.quick, only, prefer_wrk, args.profile)
    facts["total_seconds"] = round(time.perf_counter() - t0, 1)
    path, merged = report.write_json(facts, outcomes, quick=args.quick, order=list(_registry()))
    plots = report.plot(outcomes, facts["date"][:10] + ("-quick" if args.quick else ""))
    print(f"\nresults: {path}")
    for p in plots:
        print(f"plot:    {p}")
    if not args.no_doc and not args.quick:
        report.update_doc(REPO / "docs" / "benchmarks.md", "results", report.markdown_table(facts, merged))
        print("table:   docs/benchmarks.md")
    counts = {v: sum(1 for o in outcomes if o.verdict == v) for v in report.VERDICTS}
    print("summary: " + ", ".join(f"{v} {n}" for v, n in counts.items() if n))
    return 0


if __name__ == "__main__":
    sys.exit(main())
