"""A real cluster on loopback: N `gravity-sms serve` processes sharing a fresh PostgreSQL database
and a private `redis-server`, with the RingCentral emulator in its own process.

Module-scoped (one cluster per test module) so the whole cluster suite stays well under a minute.
Needs GRAVITY_TEST_POSTGRES_URL (a fresh database is created with CREATE DATABASE and dropped
after) and GRAVITY_TEST_REDIS_URL (CI's signal that Redis is available; the cluster runs its own
server so it can be killed and so keys never mix with other tests).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.broker.redis_server import RedisServer, free_port
from tests.conftest import POSTGRES_URL, REDIS_URL
from tests.rc_support import CLIENT_ID, CLIENT_SECRET, seed

ROOT = Path(__file__).resolve().parents[2]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "cluster: starts several gateway processes (PostgreSQL + Redis)")


@dataclass
class Node:
    name: str
    port: int
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()


@dataclass
class Cluster:
    env: dict[str, str]
    database_url: str
    redis: RedisServer
    emulator_url: str
    nodes: list[Node] = field(default_factory=list)
    actors: dict[str, dict[str, Any]] = field(default_factory=dict)


def _wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path, path: str = "/ready", timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited early: {log.read_text()[-2000:]}")
        try:
            if httpx.get(url + path, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} not ready: {log.read_text()[-2000:]}")


def _spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(args, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)


async def _create_database(name: str) -> None:
    import asyncpg

    assert POSTGRES_URL
    conn = await asyncpg.connect(POSTGRES_URL)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


async def _drop_database(name: str) -> None:
    import asyncpg

    assert POSTGRES_URL
    conn = await asyncpg.connect(POSTGRES_URL)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def _cli(env: dict[str, str], *args: str) -> Any:
    out = subprocess.run(
        [sys.executable, "-m", "gravity_sms.cli", *args], env=env, cwd=ROOT, capture_output=True, timeout=60
    )
    assert out.returncode == 0, out.stderr.decode()[-2000:]
    return json.loads(out.stdout) if out.stdout.strip() else None


async def _bootstrap(env: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Two tenants with an app each and an admin app, written through the gateway's services."""
    from gravity_sms.runtime import build_gateway
    from gravity_sms.settings import Settings

    settings = Settings(
        database_url=env["GRAVITY_DATABASE_URL"],
        encryption_key=env["GRAVITY_ENCRYPTION_KEY"],
        data_dir=Path(env["GRAVITY_DATA_DIR"]),
        _env_file=None,
    )  # type: ignore[call-arg]
    gw = await build_gateway(settings)
    try:
        tenant_a = (await gw.tenants.create("Cluster A")).id
        tenant_b = (await gw.tenants.create("Cluster B")).id
        return {
            "a": await gw.apps.register(None, {"name": "A app", "tenantId": tenant_a}),
            "b": await gw.apps.register(None, {"name": "B app", "tenantId": tenant_b}),
            "admin": await gw.apps.register(None, {"name": "Ops", "tenantId": tenant_a, "role": "admin"}),
        }
    finally:
        await gw.store.close()


def start_node(cluster: Cluster, name: str, tmp: Path) -> Node:
    port = free_port()
    env = dict(cluster.env, GRAVITY_PORT=str(port), GRAVITY_PUBLIC_URL=f"http://127.0.0.1:{port}")
    log = tmp / f"{name}.log"
    proc = _spawn([sys.executable, "-m", "gravity_sms.cli", "serve"], env, log)
    return Node(name, port, proc, log)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    if not POSTGRES_URL or not REDIS_URL:
        pytest.skip("cluster tests need GRAVITY_TEST_POSTGRES_URL and GRAVITY_TEST_REDIS_URL")
    tmp = tmp_path_factory.mktemp("cluster")
    db_name = "gravity_cluster_" + secrets.token_hex(4)
    asyncio.run(_create_database(db_name))
    base = POSTGRES_URL.rsplit("/", 1)[0]
    database_url = f"{base}/{db_name}"
    redis = RedisServer(tmp)
    redis.start()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        # The emulator, node A's callback registered as the OAuth redirect (connect flows go via A).
        emu_port, a_port = free_port(), free_port()
        emu_url = f"http://127.0.0.1:{emu_port}"
        seed_doc = seed(f"http://127.0.0.1:{a_port}/v1/rc/callback")
        script = (
            "import asyncio, json, sys\n"
            "from gravity_sms.emulator import EmulatorConfig, serve_emulator\n"
            f"cfg = EmulatorConfig(seed=json.loads(sys.argv[1]), public_url={emu_url!r}, enforce_rate_limits=False, "
            "rate_limits={'Light': 5000, 'Medium': 5000, 'Heavy': 5000, 'Auth': 5000})\n"
            f"asyncio.run(serve_emulator('127.0.0.1', {emu_port}, config=cfg))\n"
        )
        emu_log = tmp / "emulator.log"
        emu = _spawn([sys.executable, "-c", script, json.dumps(seed_doc)], dict(os.environ), emu_log)
        procs.append(emu)
        _wait_ready(emu_url, emu, emu_log, path="/_emulator/state")

        env = {k: v for k, v in os.environ.items() if not k.startswith("GRAVITY_") and not k.endswith("_PROXY")} | {
            "GRAVITY_ENV": "development",
            "GRAVITY_DATABASE_URL": database_url,
            "GRAVITY_REDIS_URL": redis.url,
            "GRAVITY_RC_SERVER_URL": emu_url,
            "GRAVITY_RC_CLIENT_ID": CLIENT_ID,
            "GRAVITY_RC_CLIENT_SECRET": CLIENT_SECRET,
            "GRAVITY_ENCRYPTION_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
            "GRAVITY_DATA_DIR": str(tmp / "data"),
            "GRAVITY_SEND_RATE_PER_NUMBER": "1000",
            "GRAVITY_LOG_LEVEL": "warning",
        }
        cluster = Cluster(env=env, database_url=database_url, redis=redis, emulator_url=emu_url)
        _cli(env, "migrate")  # once, before any node starts (deployment.md)
        cluster.actors = asyncio.run(_bootstrap(env))
        node_a = Node(
            "a",
            a_port,
            _spawn(
                [sys.executable, "-m", "gravity_sms.cli", "serve"],
                dict(env, GRAVITY_PORT=str(a_port), GRAVITY_PUBLIC_URL=f"http://127.0.0.1:{a_port}"),
                tmp / "a.log",
            ),
            tmp / "a.log",
        )
        node_b = start_node(cluster, "b", tmp)
        cluster.nodes = [node_a, node_b]
        for node in cluster.nodes:
            _wait_ready(node.url, node.proc, node.log)
        yield cluster
    finally:
        for node in cluster.nodes if "cluster" in locals() else []:
            node.stop()
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        redis.kill()
        asyncio.run(_drop_database(db_name))
