"""Smoke run of the benchmark harness (`python -m bench.run --quick`) with tiny sizes.

It checks that the harness still produces figures, verdict lines and result files against
the real gateway processes; it never asserts a speed target (timing is the benchmark's job,
on a quiet machine, not the unit tests')."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from bench.loadgen import python_closed_loop, wrk_path
from bench.run import main, run
from bench.stack import Stack

from bench import report

pytestmark = pytest.mark.slow


def test_quick_run_prints_figures_and_verdicts(capsys: pytest.CaptureFixture[str]) -> None:
    outcomes = run(quick=True, only=["B1", "B8"], prefer_wrk=wrk_path() is not None, duration=1.0)
    by_id = {o.id: o for o in outcomes}
    assert list(by_id) == ["B0", "B8", "B1"]  # the baseline is measured first, in the same run
    for o in outcomes:
        assert o.verdict in report.VERDICTS
        assert o.verdict != "ERROR", o.notes
    assert "req/s" in by_id["B0"].figure and by_id["B0"].metrics["load"]["requests"] > 0
    assert "RSS" in by_id["B8"].figure and by_id["B8"].metrics["rss_mb"] > 0
    b1 = by_id["B1"]
    if b1.verdict != "N/A":
        assert b1.ratio is not None and b1.ratio > 0
        assert b1.metrics["load"]["ok"] > 0
        assert b1.curves["gateway"] and b1.curves["bare ASGI"]
    printed = capsys.readouterr().out
    assert "figure:" in printed and "baseline:" in printed and "target:" in printed


def test_cli_writes_results_and_plots(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--quick", "--only", "B0", "--results", str(tmp_path), "--no-doc"]
    if wrk_path() is None:
        argv.append("--python-loadgen")
    assert main(argv) == 0
    files = list(tmp_path.glob("*-quick.json"))
    assert len(files) == 1
    data = json.loads(files[0].read_text())
    assert data["machine"]["cores"] >= 1 and data["machine"]["python"]
    assert data["scenarios"][0]["id"] == "B0" and data["scenarios"][0]["verdict"] in report.VERDICTS
    if importlib.util.find_spec("matplotlib") is not None:
        assert list(tmp_path.glob("*-b0.png"))
    assert "summary:" in capsys.readouterr().out


def test_python_generator_counts_requests_against_a_bare_server() -> None:
    """The fallback generator, used when wrk is missing, measures something real."""
    with Stack("smoke") as st:
        bare = st.start_reference("bare")
        res = python_closed_loop(f"{bare.url}/x", connections=4, duration=0.5, method="POST", body='{"a":"__ID__"}')
    assert res.requests > 0 and res.ok == res.requests and res.errors == 0
    assert 0 < res.p50_ms <= res.p99_ms <= res.max_ms


def test_markdown_table_lists_every_scenario() -> None:
    facts = report.machine_facts("wrk")
    outs = [report.Outcome("B1", "send", "x", verdict="MISS", figure="1 req/s", ratio=0.1, notes=["n"])]
    table = report.markdown_table(facts, outs)
    assert "| B1 | send | 1 req/s |" in table and "**MISS**" in table and "- B1: n" in table
