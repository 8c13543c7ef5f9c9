"""What a run reports: one `Outcome` per scenario, the machine facts, and the three outputs
(the console lines, `bench/results/<date>.json`, the table in docs/benchmarks.md, PNG plots).

Owns the result format only; scenarios decide the figures and verdicts.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from bench.procs import REPO

RESULTS = REPO / "bench" / "results"
VERDICTS = ("PASS", "MISS", "N/A", "ERROR")


@dataclass
class Outcome:
    id: str
    title: str
    target: str
    verdict: str = "N/A"
    figure: str = ""
    baseline: str = ""
    ratio: float | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    # label -> [(percentile, latency ms)] for the distribution plots
    curves: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    seconds: float = 0.0
    run_at: str = ""

    def line(self) -> str:
        ratio = f"{self.ratio:.2f}" if self.ratio is not None else "-"
        return (
            f"{self.id:<3} {self.verdict:<5} {self.title}\n"
            f"      figure:   {self.figure or '-'}\n"
            f"      baseline: {self.baseline or '-'}\n"
            f"      ratio:    {ratio}    target: {self.target}" + "".join(f"\n      note:     {n}" for n in self.notes)
        )

    def public(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("curves")
        return data


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
        return out.stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def machine_facts(generator: str) -> dict[str, Any]:
    wrk = shutil.which("wrk")
    wrk_version = "not installed"
    if wrk:
        out = subprocess.run([wrk, "--version"], capture_output=True, text=True)
        wrk_version = (out.stdout or out.stderr).splitlines()[0].split(" [")[0]
    mem_kb = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    except OSError:
        pass
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "cores": os.cpu_count(),
        "cpu": _cpu_model(),
        "memory_gb": round(mem_kb / 1024 / 1024, 1),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "os": platform.platform(),
        "python": sys.version.split()[0],
        "server": f"uvicorn {_version('uvicorn')} (uvloop {_version('uvloop')}, httptools {_version('httptools')}), one worker",
        "framework": f"starlette {_version('starlette')}",
        "load_generator": generator,
        "wrk": wrk_version,
        "commit": _git_commit(),
    }


def print_header(facts: dict[str, Any]) -> None:
    print("Gravity SMS benchmarks")
    for key in ("date", "cores", "cpu", "python", "server", "load_generator", "load_average_at_start", "commit"):
        print(f"  {key:<22} {facts[key]}")
    print()


def write_json(
    facts: dict[str, Any],
    outcomes: list[Outcome],
    kind: str = "bench",
    quick: bool = False,
    order: list[str] | None = None,
) -> tuple[Path, list[Outcome]]:
    """Writes the day's results (merged with earlier runs of the day unless quick); answers the
    path and the merged outcomes, newest per scenario."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    day = facts["date"][:10]
    suffix = "-quick" if quick else ""
    path = RESULTS / f"{day}{'' if kind == 'bench' else '-' + kind}{suffix}.json"
    if quick:
        rows = [o.public() | {"run_at": facts["date"]} for o in outcomes]
    else:
        rows = merge_day(path, facts, outcomes, order or [o.id for o in outcomes])
    payload = {"machine": facts, "quick": quick, "scenarios": rows}
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    merged = [Outcome(**{k: v for k, v in r.items() if k in Outcome.__dataclass_fields__}) for r in rows]
    return path, merged


def merge_day(path: Path, facts: dict[str, Any], outcomes: list[Outcome], order: list[str]) -> list[dict[str, Any]]:
    """The day's results file keeps the newest outcome of every scenario, so a partial run
    (`--only B7`) replaces its rows without dropping the others; each row keeps its run time."""
    rows: dict[str, dict[str, Any]] = {}
    if path.exists():
        for old in json.loads(path.read_text()).get("scenarios", []):
            rows[old["id"]] = old
    for o in outcomes:
        rows[o.id] = o.public() | {"run_at": facts["date"]}
    return [rows[k] for k in order if k in rows] + [v for k, v in rows.items() if k not in order]


def markdown_table(facts: dict[str, Any], outcomes: list[Outcome]) -> str:
    lines = [
        f"Run of {facts['date']} on {facts['cores']} cores ({facts['cpu']}), {facts['memory_gb']} GB, "
        f"Python {facts['python']}, {facts['server']}; load generator: {facts['load_generator']}; "
        f"load average at start {facts['load_average_at_start']}; commit `{facts['commit']}`.",
        "",
        "| # | Scenario | Figure | Baseline | Ratio | Target | Verdict |",
        "|---|---|---|---|---|---|---|",
    ]
    for o in outcomes:
        ratio = f"{o.ratio:.2f}" if o.ratio is not None else "-"
        title = o.title + (f" (run {o.run_at[11:16]} UTC)" if o.run_at and o.run_at != facts["date"] else "")
        cells = [o.id, title, o.figure or "-", o.baseline or "-", ratio, o.target, f"**{o.verdict}**"]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    notes = [(o.id, n) for o in outcomes for n in o.notes]
    if notes:
        lines += ["", "Notes from the run:", ""]
        lines += [f"- {i}: {' '.join(n.split())[:300]}" for i, n in notes]
    return "\n".join(lines) + "\n"


def update_doc(doc: Path, marker: str, body: str) -> None:
    """Replaces the text between `<!-- {marker}:start -->` and `<!-- {marker}:end -->`."""
    start, end = f"<!-- {marker}:start -->", f"<!-- {marker}:end -->"
    text = doc.read_text() if doc.exists() else f"{start}\n{end}\n"
    if start not in text:
        text += f"\n{start}\n{end}\n"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    doc.write_text(pattern.sub(lambda _: f"{start}\n{body}{end}", text))


def plot(outcomes: list[Outcome], day: str, kind: str = "bench") -> list[Path]:
    """One PNG per scenario with latency curves: latency by percentile (log-scaled tail)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed (pip install -e '.[bench]'): no plots")
        return []
    RESULTS.mkdir(parents=True, exist_ok=True)
    paths = []
    for o in outcomes:
        if not o.curves:
            continue
        fig, ax = plt.subplots(figsize=(7, 4))
        for label, curve in o.curves.items():
            xs = [1 / (1 - p / 100) for p, _ in curve if p < 100]
            ys = [ms for p, ms in curve if p < 100]
            ax.plot(xs, ys, label=label)
        ax.set_xscale("log")
        ticks = [2, 10, 100, 1000, 10000]
        ax.set_xticks(ticks, ["p50", "p90", "p99", "p99.9", "p99.99"])
        ax.set_ylabel("latency (ms)")
        ax.set_title(f"{o.id}: {o.title} ({day})", fontsize=9)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
        path = RESULTS / f"{day}-{o.id.lower()}.png"
        fig.tight_layout()
        fig.savefig(path, dpi=90)
        plt.close(fig)
        paths.append(path)
    return paths
