"""B5: N authenticated WebSocket connections on one node, one broadcast per second.

Client processes (uvloop) open the connections and authenticate with the app's API key through
`websockets`, then hand each socket to `_FrameReader`, which records when each `sms_inbound`
event arrives without decoding or parsing it (the generator must stay cheaper than the gateway:
the report gives both processes' CPU per frame over the broadcast window). The harness plays RingCentral:
one instant-SMS event per second into the webhook; the gateway publishes it to every
connection of the tenant. Fan-out latency = arrival minus the event's send time (shared
CLOCK_MONOTONIC). RSS per connection = (node RSS with N idle connections - before) / N.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import time
from typing import Any

import httpx
import orjson

from bench.loadgen import percentile
from bench.procs import cpu_seconds
from bench.report import Outcome
from bench.scenarios.api import EXT1, NUMBER1, connected_stack
from bench.scenarios.common import Ctx, event_body, ms, verdict
from bench.stack import NotAvailable

CLIENT_PROCESSES = 4


INBOUND_MARK = b'"type":"sms_inbound"'
RC_ID_MARK = b'"rcMessageId":"'


class _FrameReader(asyncio.Protocol):
    """Reads an authenticated connection's server frames after the `websockets` handshake.

    The client must cost far less per frame than the gateway, or B5 measures its own load
    generator: the `websockets` client (asyncio connection, message queue, UTF-8 decode, then
    JSON) cost ~27 µs of client CPU per frame. This reader takes over the transport once
    `auth_ok` is read and only walks frame headers (server frames are unmasked and unfragmented),
    looks for the event type and slices `rcMessageId` out of the bytes: no decode, no JSON.
    """

    def __init__(self, received: list[tuple[str, float]], failures: dict[str, int]) -> None:
        self.received = received
        self.failures = failures
        self.buf = b""
        self.open = True

    def _fail(self, what: str) -> None:
        self.failures[what] = self.failures.get(what, 0) + 1

    def data_received(self, data: bytes) -> None:
        now = time.monotonic()
        buf = self.buf + data if self.buf else data
        i, n = 0, len(buf)
        while n - i >= 2:
            head, size, at = buf[i], buf[i + 1] & 0x7F, i + 2
            if size == 126:
                if n - i < 4:
                    break
                size, at = int.from_bytes(buf[i + 2 : i + 4], "big"), i + 4
            elif size == 127:
                if n - i < 10:
                    break
                size, at = int.from_bytes(buf[i + 2 : i + 10], "big"), i + 10
            end = at + size
            if end > n:
                break
            opcode = head & 0x0F
            if opcode == 0x1:
                if not head & 0x80:
                    self._fail("fragmented frame")
                elif buf.find(INBOUND_MARK, at, end) >= 0:
                    k = buf.find(RC_ID_MARK, at, end) + len(RC_ID_MARK)
                    self.received.append((buf[k : buf.find(b'"', k, end)].decode(), now))
            elif opcode == 0x8:
                code = int.from_bytes(buf[at : at + 2], "big") if size >= 2 else 1005
                self._fail(f"closed:{code}")
            i = end
        self.buf = buf[i:]

    def connection_lost(self, exc: Exception | None) -> None:
        self.open = False


async def _client_main(url: str, key: str, n: int, pipe: Any) -> None:
    import websockets
    from websockets.frames import Close, Frame, Opcode

    received: list[tuple[str, float]] = []
    readers: list[tuple[Any, _FrameReader]] = []
    failures: dict[str, int] = {}
    gate = asyncio.Semaphore(50)

    async def open_one() -> None:
        async with gate:
            try:
                ws = await websockets.connect(url, max_queue=None, open_timeout=60, ping_interval=None)
                await ws.send(orjson.dumps({"type": "auth", "apiKey": key}).decode())
                reply = orjson.loads(await asyncio.wait_for(ws.recv(), 60))
            except Exception as exc:
                failures[type(exc).__name__] = failures.get(type(exc).__name__, 0) + 1
                return
            if reply.get("type") != "auth_ok":
                failures[str(reply.get("error"))] = failures.get(str(reply.get("error")), 0) + 1
                await ws.close()
                return
            # Nothing else is sent before the first broadcast (pings come every 30 s and are
            # ignored anyway): from here on the cheap reader owns the socket.
            reader = _FrameReader(received, failures)
            ws.transport.set_protocol(reader)
            readers.append((ws.transport, reader))

    await asyncio.gather(*(open_one() for _ in range(n)))
    pipe.send({"connected": len(readers), "failures": failures})
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, pipe.recv)  # "stop"
    pipe.send({"received": received, "failures": failures, "open_at_end": sum(1 for _, r in readers if r.open)})
    bye = Frame(Opcode.CLOSE, Close(1000, "").serialize()).serialize(mask=True, extensions=[])
    for transport, _ in readers:
        transport.write(bye)
        transport.close()
    await asyncio.sleep(0.5)


def _client_proc(url: str, key: str, n: int, pipe: Any) -> None:
    try:
        import uvloop

        runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    except ImportError:  # pragma: no cover - uvloop ships with uvicorn[standard]
        runner = asyncio.Runner()
    with runner:
        runner.run(_client_main(url, key, n, pipe))


def b5_websocket(ctx: Ctx) -> Outcome:
    n = 200 if ctx.quick else 10_000
    broadcasts = 2 if ctx.quick else 10
    out = Outcome(
        "B5",
        f"WebSocket: {n:,} authenticated connections on one node, 1 broadcast/s",
        "10,000 connections; fan-out p99 ≤ 1 s; ≤ 40 KB RSS per connection",
    )
    st, node, tenant, notes = connected_stack(ctx, "b5")
    with st:
        if notes:
            raise NotAvailable(notes[0])
        sub, token = st.verification_token(NUMBER1)
        time.sleep(1.0)
        rss_before = node.proc.rss()
        ctxmp = mp.get_context("spawn")
        pipes, procs = [], []
        ws_url = node.url.replace("http://", "ws://") + "/ws"
        t0 = time.monotonic()
        for i in range(CLIENT_PROCESSES):
            parent, child = ctxmp.Pipe()
            share = n // CLIENT_PROCESSES + (1 if i < n % CLIENT_PROCESSES else 0)
            p = ctxmp.Process(target=_client_proc, args=(ws_url, tenant.key, share, child), daemon=True)
            p.start()
            procs.append(p)
            pipes.append(parent)
        ready = [pipe.recv() for pipe in pipes]
        ramp = time.monotonic() - t0
        connected = sum(r["connected"] for r in ready)
        time.sleep(2.0)  # idle connections settle
        rss_conn = node.proc.rss()
        client_pids = [p.pid for p in procs if p.pid is not None]
        cpu0 = (node.proc.cpu(), sum(cpu_seconds(pid) for pid in client_pids), time.monotonic())
        body = event_body(sub, EXT1, NUMBER1)
        sent: dict[str, float] = {}
        with httpx.Client(timeout=30) as http:
            for i in range(broadcasts):
                key = f"55{i:09d}"
                t = time.monotonic()
                r = http.post(
                    f"{node.url}/v1/webhooks/ringcentral",
                    content=body.replace("__ID__", key),
                    headers={"Verification-Token": token, "Content-Type": "application/json"},
                )
                if r.status_code == 200:
                    sent[key] = t
                time.sleep(max(0.0, 1.0 - (time.monotonic() - t)))
        time.sleep(2.0 if ctx.quick else 5.0)  # let the last fan-out finish
        cpu1 = (node.proc.cpu(), sum(cpu_seconds(pid) for pid in client_pids), time.monotonic())
        rss_peak = node.proc.rss()
        for pipe in pipes:
            pipe.send("stop")
        finals = [pipe.recv() for pipe in pipes]
        for p in procs:
            p.join(timeout=30)
    lat = sorted((t - sent[k]) * 1000 for f in finals for k, t in f["received"] if k in sent)
    expected = connected * len(sent)
    per_conn_kb = (rss_conn - rss_before) / connected / 1024 if connected else float("nan")
    failures: dict[str, int] = {}
    for f in finals:
        for k, v in f["failures"].items():
            failures[k] = failures.get(k, 0) + v
    out.figure = (
        f"{connected:,} connected in {ramp:.1f} s; fan-out p50 {ms(percentile(lat, 50))}, p99 {ms(percentile(lat, 99))}, "
        f"{len(lat):,}/{expected:,} events received; {per_conn_kb:.1f} KB RSS per connection"
    )
    server_cpu, client_cpu, window = (b - a for a, b in zip(cpu0, cpu1, strict=True))
    frames = max(1, len(lat))
    out.baseline = (
        f"broadcast window {window:.0f} s: gateway CPU {server_cpu:.2f} s ({server_cpu / frames * 1e6:.0f} µs/frame), "
        f"client CPU {client_cpu:.2f} s ({client_cpu / frames * 1e6:.0f} µs/frame, "
        f"{client_cpu / max(1e-9, server_cpu + client_cpu):.0%} of the two); "
        f"node RSS {rss_before / 1e6:.0f} MB before, {rss_conn / 1e6:.0f} MB connected, {rss_peak / 1e6:.0f} MB after broadcasts"
    )
    out.metrics = {
        "connections": connected,
        "target_connections": n,
        "ramp_s": round(ramp, 2),
        "broadcasts": len(sent),
        "received": len(lat),
        "expected": expected,
        "p50_ms": percentile(lat, 50),
        "p99_ms": percentile(lat, 99),
        "kb_per_connection": round(per_conn_kb, 2),
        "failures": failures,
        "open_at_end": sum(f["open_at_end"] for f in finals),
        "window_s": round(window, 2),
        "gateway_cpu_s": round(server_cpu, 2),
        "client_cpu_s": round(client_cpu, 2),
        "gateway_us_per_frame": round(server_cpu / frames * 1e6, 1),
        "client_us_per_frame": round(client_cpu / frames * 1e6, 1),
    }
    out.curves = {
        f"fan-out to {connected:,} sockets": [(p, round(percentile(lat, p), 3)) for p in (*range(1, 100), 99.5, 99.9)]
    }
    if failures:
        out.notes.append(f"connection failures: {failures}")
    ok = connected >= 10_000 and len(lat) == expected and percentile(lat, 99) <= 1000 and per_conn_kb <= 40
    out.verdict = verdict(ok)
    if ctx.quick:
        out.notes.append("quick run: fewer than the 10,000 connections the target names, so it cannot pass")
    return out
