"""Serving the emulator over a socket with uvicorn (used by `gravity-sms emulator`).

Owns the server lifecycle: run until cancelled (or a signal), then shut down gracefully.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace

import uvicorn

from gravity_sms.emulator.app import create_emulator_app
from gravity_sms.emulator.config import EmulatorConfig
from gravity_sms.emulator.seed import load_seed_file


async def serve_emulator(
    host: str = "127.0.0.1",
    port: int = 9090,
    seed_path: str | None = None,
    *,
    config: EmulatorConfig | None = None,
) -> None:
    """Runs the emulator on host:port until cancelled; `seed_path` is a seed JSON file."""
    if config is None:
        url_host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
        config = EmulatorConfig(public_url=f"http://{url_host}:{port}")
    if seed_path is not None:
        config = replace(config, seed=load_seed_file(seed_path))
    app = create_emulator_app(config)
    server = uvicorn.Server(
        uvicorn.Config(app, host=host, port=port, lifespan="on", ws="none", timeout_graceful_shutdown=5)
    )
    task = asyncio.create_task(server.serve(), name="emulator-server")
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        server.should_exit = True
        await task
        raise
