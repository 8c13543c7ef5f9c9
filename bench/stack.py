"""A running system under test: the emulator, one or more gateway nodes, reference servers,
and the provisioning a scenario needs (tenant, apps, a RingCentral connection).

Everything goes through public surfaces: `gravity-sms` commands and environment variables
(operations.md), the HTTP API (api.md) and the emulator's control API (docs/emulator.md).
Nothing here imports the gateway's code, so the benchmark measures what an operator runs.

Benchmark-only settings (documented in docs/benchmarks.md):
- `GRAVITY_RATE_LIMIT_APP` / `GRAVITY_RATE_LIMIT_ADMIN` = 1,000,000,000: the per-key limiter
  (100/min by default) would otherwise answer 429 to nearly every benchmark request;
- `GRAVITY_LOG_LEVEL=warning`: no per-request log lines on the console;
- a temporary `GRAVITY_DATA_DIR` (fresh SQLite file and encryption key) per stack.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from bench.emu import seed_for
from bench.procs import REPO, Proc, free_port, venv_bin

UNLIMITED = "1000000000"
PG_URL = os.environ.get("GRAVITY_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("GRAVITY_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def _python_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRAVITY_")}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("PYTHONSTARTUP", None)
    return env


@dataclass
class Node:
    proc: Proc
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass
class Tenant:
    tenant_id: str
    key: str  # the first app's API key
    apps: list[dict[str, Any]] = field(default_factory=list)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


class Stack:
    """Owns a temp dir and every process it starts; `close()` (or the context manager) ends them."""

    def __init__(self, name: str, *, database_url: str | None = None, redis: bool = False) -> None:
        self.name = name
        self.dir = Path(tempfile.mkdtemp(prefix=f"gravity-{name}-"))
        self.procs: list[Proc] = []
        self.emulator: Node | None = None
        self.receiver: Node | None = None
        self.nodes: list[Node] = []
        self.database_url = database_url
        self.redis_url = REDIS_URL if redis else None
        self.tap = self.dir / "tap.jsonl"
        self._pg_db: str | None = None
        self.extra_env: dict[str, str] = {}

    # --- lifecycle ------------------------------------------------------------------------------
    def __enter__(self) -> Stack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for proc in reversed(self.procs):
            proc.kill9()
        self.procs.clear()
        if self._pg_db is not None:
            self._drop_pg_database(self._pg_db)
            self._pg_db = None
        if os.environ.get("GRAVITY_BENCH_KEEP") is None:
            shutil.rmtree(self.dir, ignore_errors=True)

    def spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> Proc:
        proc = Proc(name, argv, env or _python_env(), self.dir / "logs" / f"{name}.log", cwd=cwd)
        self.procs.append(proc.start())
        return proc

    # --- PostgreSQL: a fresh database per stack ---------------------------------------------------
    def use_fresh_postgres(self) -> str:
        import asyncio

        import asyncpg

        dbname = "bench_" + secrets.token_hex(4)

        async def create() -> None:
            conn = await asyncpg.connect(PG_URL)
            try:
                await conn.execute(f'CREATE DATABASE "{dbname}"')
            finally:
                await conn.close()

        asyncio.run(create())
        self._pg_db = dbname
        base = PG_URL.rsplit("/", 1)[0]
        self.database_url = f"{base}/{dbname}"
        return self.database_url

    @staticmethod
    def _drop_pg_database(dbname: str) -> None:
        import asyncio

        import asyncpg

        async def drop() -> None:
            conn = await asyncpg.connect(PG_URL)
            try:
                await conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
            finally:
                await conn.close()

        with contextlib.suppress(Exception):
            asyncio.run(drop())

    # --- processes ------------------------------------------------------------------------------
    def start_emulator(self, *, extensions: int = 2, numbers: int = 10, config: dict[str, Any] | None = None) -> Node:
        port = free_port()
        seed = self.dir / "seed.json"
        seed.write_text(json.dumps(seed_for(extensions=extensions, numbers_per_extension=numbers)))
        argv = [sys.executable, "-m", "bench.emu", str(port), str(seed), str(self.tap), json.dumps(config or {})]
        proc = self.spawn("emulator", argv)
        node = Node(proc, port)
        proc.wait_http(f"{node.url}/_emulator/state")
        self.emulator = node
        return node

    def gateway_env(self, port: int) -> dict[str, str]:
        env = _python_env()
        env.update(
            {
                "GRAVITY_ENV": "development",
                "GRAVITY_HOST": "127.0.0.1",
                "GRAVITY_PORT": str(port),
                "GRAVITY_PUBLIC_URL": f"http://127.0.0.1:{port}",
                "GRAVITY_DATA_DIR": str(self.dir / "data"),
                "GRAVITY_RATE_LIMIT_APP": UNLIMITED,
                "GRAVITY_RATE_LIMIT_ADMIN": UNLIMITED,
                "GRAVITY_LOG_LEVEL": "warning",
                "GRAVITY_RC_CLIENT_ID": "bench-client",
                "GRAVITY_RC_CLIENT_SECRET": "bench-secret",
            }
        )
        if self.emulator is not None:
            env["GRAVITY_RC_SERVER_URL"] = self.emulator.url
        if self.database_url:
            env["GRAVITY_DATABASE_URL"] = self.database_url
        if self.redis_url:
            env["GRAVITY_REDIS_URL"] = self.redis_url
        env.update(self.extra_env)
        return env

    def cli(self, *args: str) -> Any:
        """Runs `gravity-sms <args>` with the stack's configuration; answers its JSON."""
        env = self.gateway_env(0)
        (self.dir / "data").mkdir(exist_ok=True)
        out = subprocess.run(
            [venv_bin("gravity-sms"), *args], env=env, cwd=self.dir, capture_output=True, text=True, timeout=60
        )
        if out.returncode != 0:
            raise RuntimeError(f"gravity-sms {' '.join(args[:2])} failed: {out.stderr.strip()}")
        return json.loads(out.stdout)

    def start_gateway(self, *, workers: bool = True, port: int | None = None, wait: bool = True) -> Node:
        port = port or free_port()
        argv = [venv_bin("gravity-sms"), "serve"] + ([] if workers else ["--no-workers"])
        (self.dir / "data").mkdir(exist_ok=True)
        proc = self.spawn(f"gateway-{len(self.nodes)}", argv, self.gateway_env(port), cwd=self.dir)
        node = Node(proc, port)
        if wait:
            proc.wait_http(f"{node.url}/ready", timeout=60)
        self.nodes.append(node)
        return node

    def restart_gateway(self, node: Node, *, workers: bool = True) -> Node:
        """Starts a new process on the same port (after a kill -9 or a stop)."""
        self.nodes.remove(node)
        return self.start_gateway(workers=workers, port=node.port)

    def start_reference(self, kind: str) -> Node:
        port = free_port()
        proc = self.spawn(f"{kind}-{port}", [sys.executable, "-m", "bench.bare", kind, str(port)])
        node = Node(proc, port)
        proc.wait_http(f"{node.url}/_dump" if kind == "receiver" else f"{node.url}/health")
        return node

    # --- provisioning ---------------------------------------------------------------------------
    def create_tenant(self, name: str = "Bench", webhook_urls: list[str | None] | None = None) -> Tenant:
        tenant = self.cli("tenant", "create", "--name", name)
        urls = webhook_urls or [None]
        apps = []
        for i, url in enumerate(urls):
            args = ["app", "create", "--tenant", tenant["tenantId"], "--name", f"{name} app {i}"]
            if url:
                args += ["--webhook-url", url]
            apps.append(self.cli(*args))
        return Tenant(tenant["tenantId"], apps[0]["apiKey"], apps)

    def create_admin(self, tenant: Tenant) -> str:
        return str(
            self.cli("app", "create", "--tenant", tenant.tenant_id, "--name", "bench admin", "--role", "admin")[
                "apiKey"
            ]
        )

    def connect(self, node: Node, tenant: Tenant, extension: str, *, invite: bool = False) -> None:
        """The OAuth connect flow of api.md §9, driven like a browser would."""
        assert self.emulator is not None
        with httpx.Client(timeout=30) as http:
            http.post(f"{self.emulator.url}/_emulator/oauth/next-login", json={"extensionId": extension})
            route = "/v1/rc/invite-token" if invite else "/v1/rc/connect-token"
            r = http.post(node.url + route, headers=tenant.headers)
            if r.status_code != 200:
                raise NotAvailable(f"{route} answered {r.status_code}")
            link = r.json()["inviteUrl" if invite else "connectUrl"]
            token = parse_qs(urlsplit(link).query)["token"][0]
            r = http.post(node.url + "/v1/rc/connect", data={"token": token})
            if r.status_code != 303:
                raise NotAvailable(f"POST /v1/rc/connect answered {r.status_code}")
            r = http.get(r.headers["location"])  # the emulator's authorize page (auto-approve)
            if r.status_code != 302:
                raise RuntimeError(f"emulator authorize answered {r.status_code}: {r.text[:200]}")
            callback = r.headers["location"]
            r = http.get(callback + "&format=json")
            if r.status_code != 200:
                raise RuntimeError(f"callback answered {r.status_code}: {r.text[:200]}")

    def emulator_state(self) -> dict[str, Any]:
        assert self.emulator is not None
        return dict(httpx.get(f"{self.emulator.url}/_emulator/state", timeout=30).json())

    def inject_inbound(self, to: str, text: str, sender: str = "+15551230000", **extra: Any) -> dict[str, Any]:
        assert self.emulator is not None
        body = {"from": sender, "to": to, "text": text, **extra}
        return dict(httpx.post(f"{self.emulator.url}/_emulator/inbound", json=body, timeout=30).json())

    def tapped(self) -> list[dict[str, Any]]:
        if not self.tap.exists():
            return []
        return [json.loads(line) for line in self.tap.read_text().splitlines() if line.strip()]

    def verification_token(self, to: str, *, timeout: float = 10.0) -> tuple[str, str]:
        """(subscriptionId, Verification-Token) of the subscription that delivers to `to`'s extension:
        injects one inbound SMS and reads the token off the tap."""
        self.inject_inbound(to, "token probe")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.tapped():
                return self._subscription_for(to), str(line["token"])
            time.sleep(0.05)
        raise NotAvailable("the emulator delivered no event to the gateway (no subscription?)")

    def _subscription_for(self, number: str) -> str:
        state = self.emulator_state()
        ext_of = {
            n["phoneNumber"]: e["id"] for a in state["accounts"] for e in a["extensions"] for n in e["phoneNumbers"]
        }
        for sub in state["subscriptions"]:
            if str(sub.get("extensionId")) == str(ext_of.get(number)) and sub.get("status") == "Active":
                return str(sub["id"])
        raise NotAvailable(f"no active subscription for {number}")


class NotAvailable(RuntimeError):
    """A feature the scenario needs is not there (route missing, not connected): reported as N/A."""


def wait_until(predicate: Any, timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())
