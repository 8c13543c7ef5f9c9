"""Sampling profiles of a running gateway process with py-spy (`--profile`).

Owns one thing: attach py-spy to a pid for the length of a load run, keep the collapsed stacks
(bench/results/<date>-<scenario>.folded, loadable in speedscope) and summarise them as the
share of samples that pass through each function (inclusive) and that end in it (self).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path
from typing import Any

_FRAME = re.compile(r"^(?P<func>.+?) \((?P<file>[^:()]+)(?::\d+)?\)$")


def py_spy() -> str | None:
    candidate = Path(sys.executable).parent / "py-spy"
    return str(candidate) if candidate.exists() else shutil.which("py-spy")


class Profiler:
    """py-spy record in the background: `with Profiler(pid, seconds, path) as p: ...; p.summary()`."""

    def __init__(self, pid: int, seconds: float, out: Path) -> None:
        self.pid, self.seconds, self.out = pid, seconds, out
        self._thread: threading.Thread | None = None
        self.error: str | None = None

    def __enter__(self) -> Profiler:
        exe = py_spy()
        if exe is None:
            self.error = "py-spy is not installed (pip install -e '.[bench]')"
            return self
        self.out.parent.mkdir(parents=True, exist_ok=True)
        argv = [exe, "record", "--pid", str(self.pid), "--duration", str(max(1, int(self.seconds))), "--rate", "200"]
        argv += ["--format", "raw", "--output", str(self.out), "--nonblocking"]

        def run() -> None:
            done = subprocess.run(argv, capture_output=True, text=True)
            if done.returncode != 0:
                self.error = (done.stderr or done.stdout).strip()[-300:]

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._thread is not None:
            self._thread.join(timeout=self.seconds + 30)

    def summary(self, top: int = 12) -> dict[str, Any]:
        if self.error or not self.out.exists():
            return {"error": self.error or "no profile written"}
        return summarise(self.out.read_text(), top)


def _name(frame: str) -> str:
    m = _FRAME.match(frame.strip())
    if not m:
        return frame.strip()
    path = m.group("file")
    for marker in ("site-packages/", "src/", "lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{path}:{m.group('func')}"


def summarise(folded: str, top: int = 12) -> dict[str, Any]:
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in folded.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [
            _name(f) for f in stack.split(";") if f and not f.startswith("process ") and not f.startswith("thread ")
        ]
        if not frames:
            continue
        total += n
        for f in set(frames):
            inclusive[f] += n
        own[frames[-1]] += n
    if not total:
        return {"samples": 0}

    def pct(c: Counter[str], only_project: bool) -> list[tuple[str, float]]:
        items = [(k, v) for k, v in c.most_common() if not only_project or k.startswith("gravity_sms")]
        return [(k, round(100 * v / total, 1)) for k, v in items[:top]]

    return {"samples": total, "project_inclusive": pct(inclusive, True), "self": pct(own, False)}
