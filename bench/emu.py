"""The RingCentral emulator as a benchmark/stress process, with a tap on what it sends.

Runs `gravity_sms.emulator` (its public API only: `EmulatorConfig`, `create_emulator_app`) under
uvicorn, with a webhook transport that forwards to the network and appends one JSON line per
notification it delivers to a tap file: the subscription's address, the `Verification-Token`
header, the event's message id, the monotonic send time and the gateway's answer (status). The harness needs the token to
send RingCentral-shaped events itself (B2 at wrk speed), and the times to count what the
emulator actually delivered (stress suites). The tap is the harness's, not the emulator's.

Usage: python -m bench.emu PORT SEED_JSON TAP_FILE [CONFIG_JSON]
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from gravity_sms.emulator import EmulatorConfig, create_emulator_app


class TapTransport(httpx.AsyncBaseTransport):
    def __init__(self, tap: Path) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.tap = tap.open("a", buffering=1)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        token = request.headers.get("verification-token")
        if token is not None:
            event_id = None
            try:
                body = json.loads(request.content or b"{}")
                event_id = (body.get("body") or {}).get("id")
            except (ValueError, AttributeError):
                pass
            line: dict[str, Any] = {"address": str(request.url), "token": token, "id": event_id, "t": time.monotonic()}
            try:
                response = await self.inner.handle_async_request(request)
            except httpx.HTTPError as exc:
                line["status"] = None
                line["error"] = type(exc).__name__
                self.tap.write(json.dumps(line) + "\n")
                raise
            line["status"] = response.status_code
            self.tap.write(json.dumps(line) + "\n")
            return response
        return await self.inner.handle_async_request(request)


def seed_for(*, extensions: int = 2, numbers_per_extension: int = 10) -> dict[str, Any]:
    """One account, `extensions` extensions with SMS-capable numbers, one client for any URI."""
    exts = []
    for e in range(extensions):
        numbers = [
            {"phoneNumber": f"+1555{e + 1:03d}{n:04d}", "features": ["SmsSender", "CallerId"]}
            for n in range(numbers_per_extension)
        ]
        exts.append({"id": f"40211823{e + 1:04d}", "extensionNumber": f"{101 + e}", "phoneNumbers": numbers})
    return {
        "clients": [{"clientId": "bench-client", "clientSecret": "bench-secret", "redirectUris": ["*"]}],
        "accounts": [{"id": "402118231008", "extensions": exts}],
    }


def main(argv: list[str]) -> None:
    port, seed_path, tap_path = int(argv[0]), argv[1], Path(argv[2])
    extra: dict[str, Any] = json.loads(argv[3]) if len(argv) > 3 else {}
    config = EmulatorConfig(
        seed=json.loads(Path(seed_path).read_text()),
        public_url=f"http://127.0.0.1:{port}",
        webhook_transport=TapTransport(tap_path),
        **extra,
    )
    app = create_emulator_app(config)
    uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="on", ws="none", log_level="warning")
    ).run()


if __name__ == "__main__":
    main(sys.argv[1:])
