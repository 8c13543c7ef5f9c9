"""`gravity-sms demo` comes up connected over real sockets, and stops cleanly when cancelled."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

import httpx
import pytest

from gravity_sms.demo import run_demo
from gravity_sms.settings import Settings
from tests.rc_support import free_port


async def test_demo_connects_the_tenant_and_prints_working_commands(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    port, emu_port = free_port(), free_port()
    settings = Settings(port=port, data_dir=tmp_path / "data", _env_file=None)  # type: ignore[call-arg]
    ready = asyncio.Event()
    gravity = logging.getLogger("gravity")
    saved = (gravity.handlers[:], gravity.propagate, gravity.level)  # run_demo configures logging
    task = asyncio.create_task(run_demo(settings, emulator_port=emu_port, ready=ready))
    try:
        async with asyncio.timeout(30):
            await ready.wait()
        banner = capsys.readouterr().out
        key = next(line.split()[-1] for line in banner.splitlines() if "App API key" in line)
        assert f"http://127.0.0.1:{port}/v1/sms/send" in banner and f"127.0.0.1:{emu_port}/_emulator/inbound" in banner
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            status = (await http.get("/v1/rc/status", headers={"Authorization": f"Bearer {key}"})).json()
        assert status["connected"] is True and len(status["extensions"]) == 2
        assert (tmp_path / "data" / "demo.json").exists()
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        gravity.handlers[:], gravity.propagate, gravity.level = saved
    assert "demo stopped" in capsys.readouterr().out
