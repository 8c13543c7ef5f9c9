"""Child processes of a benchmark or stress run: start, wait until they answer, measure, kill.

Owns process lifecycles only (free ports, logs to files, RSS and CPU from /proc). It knows
nothing of what the processes are: `stack.py` decides that.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def venv_bin(name: str) -> str:
    """A console script of the running interpreter's environment (the project's venv)."""
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else name


def rss_bytes(pid: int) -> int:
    """Resident set size of one process (VmRSS), 0 when it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (FileNotFoundError, ProcessLookupError):
        return 0
    return 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time consumed so far by one process (and its reaped children)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    # after the command name: state is field 3, utime 14, stime 15, cutime 16, cstime 17
    utime, stime, cutime, cstime = (int(fields[i]) for i in (11, 12, 13, 14))
    return (utime + stime + cutime + cstime) / CLK_TCK


@dataclass
class Proc:
    """One child process with its log file."""

    name: str
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    cwd: Path | None = None
    popen: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    _log: object = field(default=None, repr=False)

    def start(self) -> Proc:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # closed in stop()
        self._log = log
        self.started_at = time.perf_counter()
        self.popen = subprocess.Popen(
            self.argv,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=str(self.cwd or REPO),
            start_new_session=True,
        )
        return self

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def rss(self) -> int:
        return rss_bytes(self.pid) if self.alive() else 0

    def cpu(self) -> float:
        return cpu_seconds(self.pid) if self.alive() else 0.0

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""

    def wait_http(self, url: str, *, timeout: float = 30.0, status: int = 200) -> float:
        """Polls `url` until it answers `status`; returns seconds since start()."""
        deadline = time.perf_counter() + timeout
        with httpx.Client(timeout=1.0) as client:
            while time.perf_counter() < deadline:
                if not self.alive():
                    raise RuntimeError(f"{self.name} exited early:\n{self.log_tail()}")
                try:
                    if client.get(url).status_code == status:
                        return time.perf_counter() - self.started_at
                except httpx.HTTPError:
                    pass
                time.sleep(0.01)
        raise TimeoutError(f"{self.name} did not answer {url} within {timeout}s:\n{self.log_tail()}")

    def kill9(self) -> None:
        if self.alive():
            assert self.popen is not None
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(timeout=10)
        self._close_log()

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (graceful drain), then SIGKILL past the deadline."""
        if self.alive():
            assert self.popen is not None
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill9()
        self._close_log()

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()  # type: ignore[attr-defined]
            self._log = None


class CpuMeter:
    """CPU share of a set of processes over an interval (1.0 = one core fully busy)."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self._start = {k: cpu_seconds(p) for k, p in pids.items()}
        self._t0 = time.perf_counter()

    def shares(self) -> dict[str, float]:
        elapsed = max(time.perf_counter() - self._t0, 1e-6)
        return {k: round((cpu_seconds(p) - self._start[k]) / elapsed, 2) for k, p in self.pids.items()}
