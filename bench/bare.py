"""The reference servers of the benchmarks, run as separate processes.

- `bare`: a bare ASGI callable that reads the JSON body and answers a constant 202 JSON body:
  the B1/B2 baseline. It is served by uvicorn exactly as `gravity-sms serve` serves the gateway
  (runtime.serve: http "auto" = httptools, one worker, access log off, on uvloop as
  `gravity-sms serve` runs since cli.py chooses the loop), so the ratio measures the gateway's
  own code, not the server stack. `BENCH_BARE_UVLOOP=0` serves it on the stdlib loop instead,
  to price that difference.
- `receiver`: the app-webhook receiver of B3/B4. `POST /hook/<name>` records the arrival
  time (CLOCK_MONOTONIC, shared by every process on Linux) of each delivery by the payload's
  `rcMessageId`; `POST /hang/<name>` records and then hangs past any webhook timeout;
  `GET /_dump` answers every record. It is also the "direct receiver" baseline: the load
  generator posts to it straight, measuring the bare path without the gateway.

Usage: python -m bench.bare {bare|receiver} PORT
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from typing import Any

import orjson
import uvicorn

Scope = dict[str, Any]
_BODY_202 = b'{"messageId":"msg_000000000000","status":"queued"}'
_JSON = [(b"content-type", b"application/json")]
_OK = [*_JSON, (b"content-length", b"11")]


async def _read_body(receive: Any) -> bytes:
    chunks = []
    more = True
    while more:
        message = await receive()
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    return b"".join(chunks)


async def _lifespan(receive: Any, send: Any) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def bare_app(scope: Scope, receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    body = await _read_body(receive)
    if scope["method"] == "POST":
        orjson.loads(body)  # parse it, as any JSON endpoint must
        status, payload = 202, _BODY_202
    else:
        status, payload = 200, b'{"status":"ok"}'
    headers = [*_JSON, (b"content-length", str(len(payload)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


class Receiver:
    def __init__(self) -> None:
        self.records: list[tuple[str, str, float]] = []

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        path: str = scope["path"]
        body = await _read_body(receive)
        if scope["method"] == "GET" and path == "/_dump":
            out = orjson.dumps({"records": self.records})
            await send({"type": "http.response.start", "status": 200, "headers": _JSON})
            await send({"type": "http.response.body", "body": out})
            return
        if scope["method"] == "DELETE" and path == "/_dump":
            self.records.clear()
        else:
            now = time.monotonic()
            try:
                data = orjson.loads(body)
                key = str(data.get("rcMessageId") or data.get("messageId") or "")
            except (orjson.JSONDecodeError, AttributeError):
                key = ""
            name = path.rsplit("/", 1)[-1]
            self.records.append((name, key, now))
            if path.startswith("/hang/"):
                await asyncio.sleep(3600)
        await send({"type": "http.response.start", "status": 200, "headers": _OK})
        await send({"type": "http.response.body", "body": b'{"ok":true}'})


def main(argv: list[str]) -> None:
    kind, port = argv[0], int(argv[1])
    app: Any = bare_app if kind == "bare" else Receiver()
    # The same uvicorn settings as gravity_sms.runtime.serve.
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="on",
        access_log=False,
        timeout_graceful_shutdown=10,
    )
    server = uvicorn.Server(config)
    if os.environ.get("BENCH_BARE_UVLOOP", "1") == "1":
        server.run()  # uvicorn's own loop setup: uvloop, as `gravity-sms serve` uses
    else:
        asyncio.run(server.serve())  # the stdlib loop, to price the difference


if __name__ == "__main__":
    main(sys.argv[1:])
