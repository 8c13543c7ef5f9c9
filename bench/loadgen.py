"""Load generators: `wrk` (compiled, preferred) and a multi-process Python generator (fallback,
and the only choice for open-loop end-to-end measurements).

Owns the measurement of a load run: requests, errors, throughput and latency percentiles.
Closed loop (`closed_loop`): C connections each send as fast as answers come back, for a
duration. Open loop (`open_loop`): requests are sent at a fixed rate whatever the answers do,
and latency is counted from each request's *intended* send time, so a stalled server cannot
hide its stall (no coordinated omission).

Request bodies may carry `__ID__`, replaced per request by a run-unique decimal id (B2's event
ids must differ, or the dedup path would answer instead of the insert path).
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing as mp
import os
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

PERCENTILES = [*range(1, 100), 99.5, 99.9, 99.99]
MARK = "__ID__"


@dataclass
class LoadResult:
    generator: str
    requests: int
    duration_s: float
    rps: float
    ok: int
    non_2xx: int
    errors: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float
    # (percentile, ms) pairs for the distribution plots
    curve: list[tuple[float, float]] = field(default_factory=list)
    cpu_share: float | None = None  # the generator's own CPU use, in cores

    def public(self) -> dict[str, Any]:
        return asdict(self)


def percentile(sorted_values: list[float], p: float) -> float:
    if not sorted_values:
        return float("nan")
    k = min(len(sorted_values) - 1, max(0, round(p / 100 * (len(sorted_values) - 1))))
    return sorted_values[k]


def summarize(
    generator: str, latencies_s: list[float], duration: float, ok: int, non_2xx: int, errors: int, cpu: float | None
) -> LoadResult:
    lat = sorted(x * 1000 for x in latencies_s)
    n = ok + non_2xx
    return LoadResult(
        generator=generator,
        requests=n,
        duration_s=round(duration, 2),
        rps=round(n / duration, 1) if duration else 0.0,
        ok=ok,
        non_2xx=non_2xx,
        errors=errors,
        p50_ms=round(percentile(lat, 50), 3),
        p90_ms=round(percentile(lat, 90), 3),
        p99_ms=round(percentile(lat, 99), 3),
        p999_ms=round(percentile(lat, 99.9), 3),
        max_ms=round(lat[-1], 3) if lat else float("nan"),
        curve=[(p, round(percentile(lat, p), 3)) for p in PERCENTILES],
        cpu_share=cpu,
    )


# --- wrk ---------------------------------------------------------------------------------------
_LUA = r"""
wrk.method = "%(method)s"
wrk.body = %(body)s
%(headers)s
local template = %(template)s
local counter = 0
local threads = {}
function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
end
if template ~= nil then
  request = function()
    counter = counter + 1
    local uid = string.format("%(run)s%%d%%09d", tid or 1, counter)
    return wrk.format(nil, nil, nil, (string.gsub(template, "__ID__", uid)))
  end
end
done = function(summary, latency, requests)
  local parts = {}
  for _, p in ipairs({%(percentiles)s}) do
    table.insert(parts, string.format("[%%s,%%d]", tostring(p), latency:percentile(p)))
  end
  io.write(string.format(
    'WRKJSON {"requests":%%d,"duration_us":%%d,"connect":%%d,"read":%%d,"write":%%d,"status":%%d,"timeout":%%d,"max_us":%%d,"curve":[%%s]}\n',
    summary.requests, summary.duration, summary.errors.connect, summary.errors.read, summary.errors.write,
    summary.errors.status, summary.errors.timeout, latency.max, table.concat(parts, ",")))
end
"""


def wrk_path() -> str | None:
    return shutil.which("wrk")


def _lua_str(value: str | None) -> str:
    if value is None:
        return "nil"
    return "[==[" + value + "]==]"


def run_wrk(
    url: str,
    *,
    connections: int,
    duration: float,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    body: str | None = None,
    threads: int = 1,
) -> LoadResult:
    """wrk closed loop; `body` may carry __ID__ (made unique per request in Lua)."""
    exe = wrk_path()
    if exe is None:
        raise RuntimeError("wrk is not installed")
    headers = dict(headers or {})
    if body is not None:
        headers.setdefault("Content-Type", "application/json")
    dynamic = body is not None and MARK in body
    header_lines = "\n".join(f"wrk.headers[ {_lua_str(k)} ] = {_lua_str(v)}" for k, v in headers.items())
    script = _LUA % {
        "method": method,
        "body": _lua_str(None if dynamic else body),
        "headers": header_lines,
        "template": _lua_str(body if dynamic else None),
        "run": str(int(time.time() * 1000) % 10**9),
        "percentiles": ",".join(str(p) for p in PERCENTILES),
    }
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as fh:
        fh.write(script)
        lua = fh.name
    try:
        argv = [exe, f"-t{threads}", f"-c{connections}", f"-d{max(1, round(duration))}s", "--timeout", "10s"]
        argv += ["-s", lua, url]
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        assert proc.stdout is not None and proc.stderr is not None
        out = proc.stdout.read().decode()
        err = proc.stderr.read().decode()
        proc.stdout.close()
        proc.stderr.close()
    finally:
        Path(lua).unlink(missing_ok=True)
    match = re.search(r"^WRKJSON (.*)$", out, re.M)
    if proc.returncode != 0 or match is None:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {err.strip() or out.strip()}")
    data = json.loads(match.group(1))
    secs = data["duration_us"] / 1e6
    curve = [(float(p), round(us / 1000, 3)) for p, us in data["curve"]]
    lookup = dict(curve)
    errors = data["connect"] + data["read"] + data["write"] + data["timeout"]
    n = data["requests"]
    return LoadResult(
        generator=f"wrk -t{threads} -c{connections}",
        requests=n,
        duration_s=round(secs, 2),
        rps=round(n / secs, 1),
        ok=n - data["status"],
        non_2xx=data["status"],
        errors=errors,
        p50_ms=lookup[50.0],
        p90_ms=lookup[90.0],
        p99_ms=lookup[99.0],
        p999_ms=lookup[99.9],
        max_ms=round(data["max_us"] / 1000, 3),
        curve=curve,
        cpu_share=round((usage.ru_utime + usage.ru_stime) / secs, 2),
    )


# --- the Python generator ----------------------------------------------------------------------
class RawConnection:
    """A minimal HTTP/1.1 keep-alive client connection (fixed-length bodies only), so the
    generator spends its CPU on requests rather than on a client library's features."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, headers: dict[str, str], body: bytes = b"") -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        head = f"{method} {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nContent-Length: {len(body)}\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self.writer.write(head.encode() + b"\r\n" + body)
        try:
            raw = await self.reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            await self.close()
            raise ConnectionError("connection closed") from None
        status = int(raw[9:12])
        length = 0
        close = chunked = False
        for line in raw.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            lname = name.strip().lower()
            if lname == b"content-length":
                length = int(value)
            elif lname == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
            elif lname == b"connection" and value.strip().lower() == b"close":
                close = True
        if chunked:
            parts = []
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                data = await self.reader.readexactly(size + 2)
                if size == 0:
                    break
                parts.append(data[:-2])
            payload = b"".join(parts)
        else:
            payload = await self.reader.readexactly(length) if length else b""
        if close:
            await self.close()
        return status, payload

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            try:
                await self.writer.wait_closed()
            except (ConnectionError, OSError):
                pass
        self.reader = self.writer = None


def _body_for(template: str | None, prefix: str, n: int) -> bytes:
    if template is None:
        return b""
    return template.replace(MARK, f"{prefix}{n:09d}").encode()


async def _closed_worker(spec: dict[str, Any], conns: int, prefix: str) -> dict[str, Any]:
    u = urlsplit(spec["url"])
    path = u.path + (f"?{u.query}" if u.query else "")
    host, port = u.hostname or "127.0.0.1", u.port or 80
    headers = dict(spec["headers"])
    if spec["body"] is not None:
        headers.setdefault("Content-Type", "application/json")
    lat: list[float] = []
    counts = {"ok": 0, "non_2xx": 0, "errors": 0}
    seq = 0
    deadline = time.perf_counter() + spec["duration"]

    async def one() -> None:
        nonlocal seq
        c = RawConnection(host, port)
        while time.perf_counter() < deadline:
            seq += 1
            body = _body_for(spec["body"], prefix, seq)
            t0 = time.perf_counter()
            try:
                status, _ = await c.request(spec["method"], path, headers, body)
            except (ConnectionError, OSError, asyncio.IncompleteReadError):
                counts["errors"] += 1
                await asyncio.sleep(0.01)
                continue
            lat.append(time.perf_counter() - t0)
            counts["ok" if 200 <= status < 300 else "non_2xx"] += 1
        await c.close()

    await asyncio.gather(*(one() for _ in range(conns)))
    return {"lat": lat, **counts}


def _closed_proc(spec: dict[str, Any], conns: int, prefix: str, out: Any) -> None:
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    out.send(asyncio.run(_closed_worker(spec, conns, prefix)))
    out.close()


def python_closed_loop(
    url: str,
    *,
    connections: int,
    duration: float,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    body: str | None = None,
    processes: int = 2,
) -> LoadResult:
    """The fallback closed-loop generator: `processes` processes sharing the connections."""
    spec = {"url": url, "duration": duration, "method": method, "headers": headers or {}, "body": body}
    ctx = mp.get_context("spawn")
    procs, pipes = [], []
    cpu_before = sum(os.times()[2:4])
    run = int(time.time() * 1000) % 10**9
    for i in range(processes):
        conns = connections // processes + (1 if i < connections % processes else 0)
        parent, child = ctx.Pipe(duplex=False)
        p = ctx.Process(target=_closed_proc, args=(spec, conns, f"{run}{i}", child), daemon=True)
        p.start()
        procs.append(p)
        pipes.append(parent)
    t0 = time.perf_counter()
    results = [pipe.recv() for pipe in pipes]
    elapsed = time.perf_counter() - t0
    for p in procs:
        p.join(timeout=10)
    cpu = sum(os.times()[2:4]) - cpu_before  # the reaped children's user + system time
    lat = [x for r in results for x in r["lat"]]
    return summarize(
        f"python x{processes} -c{connections}",
        lat,
        elapsed,
        sum(r["ok"] for r in results),
        sum(r["non_2xx"] for r in results),
        sum(r["errors"] for r in results),
        round(cpu / elapsed, 2) if elapsed else None,
    )


def closed_loop(url: str, *, connections: int, duration: float, prefer_wrk: bool = True, **kw: Any) -> LoadResult:
    """wrk when installed, else the Python generator."""
    if prefer_wrk and wrk_path() is not None:
        return run_wrk(url, connections=connections, duration=duration, **kw)
    return python_closed_loop(url, connections=connections, duration=duration, **kw)


@dataclass
class OpenLoopRun:
    """What an open-loop run saw: per-request intended send times and acknowledgements."""

    sent: dict[str, float]  # id -> intended send time (CLOCK_MONOTONIC)
    ack_latency_s: list[float]
    ok: int
    non_2xx: int
    errors: int
    duration_s: float
    statuses: dict[int, int]
    intended: int = 0  # requests the schedule called for (some may never have been sent)


async def open_loop(
    url: str,
    *,
    rate: float,
    duration: float,
    body: str,
    headers: dict[str, str] | None = None,
    prefix: str = "",
    max_connections: int = 256,
) -> OpenLoopRun:
    """Sends `rate` requests per second for `duration` s; each body's __ID__ is a unique id.

    Runs in the caller's event loop (one process is enough for the few hundred requests per
    second of B3/B4; the CPU share is reported by the caller)."""
    u = urlsplit(url)
    path = u.path + (f"?{u.query}" if u.query else "")
    host, port = u.hostname or "127.0.0.1", u.port or 80
    hdrs = {"Content-Type": "application/json", **(headers or {})}
    idle: list[RawConnection] = []
    opened = 0
    sent: dict[str, float] = {}
    acks: list[float] = []
    statuses: dict[int, int] = {}
    counts = {"ok": 0, "non_2xx": 0, "errors": 0}
    total = int(rate * duration)
    start = time.monotonic() + 0.05
    gate = asyncio.Semaphore(max_connections)

    async def fire(i: int, intended: float) -> None:
        nonlocal opened
        key = f"{prefix}{i:09d}"
        async with gate:
            sent[key] = intended
            payload = body.replace(MARK, key).encode()
            while True:
                reused = bool(idle)
                if reused:
                    conn = idle.pop()
                else:
                    conn = RawConnection(host, port)
                    opened += 1
                try:
                    status, _ = await conn.request("POST", path, hdrs, payload)
                    break
                except (ConnectionError, OSError, asyncio.IncompleteReadError):
                    await conn.close()
                    if reused:
                        # The server closed an idle keep-alive connection (uvicorn after 5 s)
                        # before this request reached it: send it again on another, as HTTP
                        # clients do. Only a fresh connection's failure is an error.
                        continue
                    counts["errors"] += 1
                    return
            acks.append(time.monotonic() - intended)
            statuses[status] = statuses.get(status, 0) + 1
            counts["ok" if 200 <= status < 300 else "non_2xx"] += 1
            idle.append(conn)

    tasks = []
    for i in range(total):
        intended = start + i / rate
        delay = intended - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(fire(i, intended)))
    await asyncio.wait(tasks, timeout=30)
    for conn in idle:
        await conn.close()
    return OpenLoopRun(
        sent, acks, counts["ok"], counts["non_2xx"], counts["errors"], time.monotonic() - start, statuses, total
    )
