"""`python -m gravity_sms.emulator --host 127.0.0.1 --port 9090 --seed examples/emulator-seed.json`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib

from gravity_sms.emulator.server import serve_emulator


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m gravity_sms.emulator", description="RingCentral emulator")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9090)
    parser.add_argument("--seed", default=None, help="seed JSON file (docs/emulator.md)")
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve_emulator(args.host, args.port, args.seed))


if __name__ == "__main__":
    main()
