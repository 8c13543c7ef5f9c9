"""`python -m stress.run [--quick] [--only R1,R3] [--results DIR] [--no-doc]`

Runs the reliability suites of quality.md §2 against real processes (gateway nodes, the
RingCentral emulator, receivers, PostgreSQL and Redis for the cluster suites). Each ends in a
figure and a verdict computed from what the emulator and the receivers saw; results go to
bench/results/<date>-stress.json and the table in docs/reliability.md.
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from bench.procs import REPO
from bench.report import Outcome
from bench.stack import NotAvailable

from bench import report
from stress.common import SCtx

Suite = Callable[[SCtx], Outcome]


def _registry() -> dict[str, tuple[str, Suite]]:
    from stress import cluster, crash, faults, fuzz, lifecycle

    return {
        "R1": ("kill -9 and restart", crash.r1_kill9),
        "R2": ("emulator fault storm", faults.r2_fault_storm),
        "R3": ("duplicate inbound events across nodes", cluster.r3_duplicates),
        "R4": ("node killed in a cluster", cluster.r4_node_killed),
        "R5": ("subscription, token and outage disasters", lifecycle.r5_disasters),
        "R6": ("schemathesis and webhook fuzzing", fuzz.r6_fuzz),
    }


def run(quick: bool, only: list[str] | None) -> list[Outcome]:
    registry = _registry()
    ctx = SCtx(quick=quick)
    outcomes = []
    for key, (title, fn) in registry.items():
        if only is not None and key not in only:
            continue
        print(f"... {key} {title}", flush=True)
        t0 = time.perf_counter()
        try:
            outcome = fn(ctx)
        except NotAvailable as exc:
            outcome = Outcome(key, title, "-", verdict="N/A", notes=[f"not testable yet: {exc}"])
        except Exception as exc:
            traceback.print_exc()
            outcome = Outcome(key, title, "-", verdict="ERROR", notes=[f"{type(exc).__name__}: {exc}"[:300]])
        outcome.seconds = round(time.perf_counter() - t0, 1)
        print(outcome.line(), flush=True)
        outcomes.append(outcome)
    return outcomes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stress.run", description="Gravity SMS reliability suites")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks the harness, not the properties")
    parser.add_argument("--only", default=None, help="comma-separated suite ids, e.g. R1,R3")
    parser.add_argument("--results", default=None, help="directory for the JSON results")
    parser.add_argument("--no-doc", action="store_true", help="do not update docs/reliability.md")
    args = parser.parse_args(argv)
    only = [s.strip().upper() for s in args.only.split(",")] if args.only else None
    if args.results:
        report.RESULTS = Path(args.results)
    facts = report.machine_facts("python harness (threads and asyncio), the emulator's control API")
    report.print_header(facts)
    t0 = time.perf_counter()
    outcomes = run(args.quick, only)
    facts["total_seconds"] = round(time.perf_counter() - t0, 1)
    path, merged = report.write_json(facts, outcomes, kind="stress", quick=args.quick, order=list(_registry()))
    print(f"\nresults: {path}")
    if not args.no_doc and not args.quick:
        report.update_doc(REPO / "docs" / "reliability.md", "results", report.markdown_table(facts, merged))
        print("table:   docs/reliability.md")
    counts = {v: sum(1 for o in outcomes if o.verdict == v) for v in report.VERDICTS}
    print("summary: " + ", ".join(f"{v} {n}" for v, n in counts.items() if n))
    return 0


if __name__ == "__main__":
    sys.exit(main())
