"""Shared fixtures: real databases (SQLite file always, PostgreSQL when configured), the wired
gateway with a manual clock, an HTTP client over ASGI, and a network guard (loopback only)."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import secrets
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from gravity_sms.domain.clock import ManualClock
from gravity_sms.runtime import Runtime, build_gateway
from gravity_sms.settings import Settings
from gravity_sms.store import Database

POSTGRES_URL = os.environ.get("GRAVITY_TEST_POSTGRES_URL")
REDIS_URL = os.environ.get("GRAVITY_TEST_REDIS_URL")

# --- network guard: tests may reach loopback (and Unix sockets) only --------------------------
_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def _allowed(address: Any) -> bool:
    if isinstance(address, (str, bytes)):
        return True  # AF_UNIX
    host = address[0]
    if host in ("localhost", "testserver", "test"):
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


def _guarded_connect(self: socket.socket, address: Any) -> Any:
    if not _allowed(address):
        raise ConnectionRefusedError(f"network guard: tests may reach loopback only, not {address!r}")
    return _real_connect(self, address)


def _guarded_connect_ex(self: socket.socket, address: Any) -> Any:
    if not _allowed(address):
        raise ConnectionRefusedError(f"network guard: tests may reach loopback only, not {address!r}")
    return _real_connect_ex(self, address)


socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign]


# --- databases ---------------------------------------------------------------------------------
def _backends() -> list[Any]:
    params: list[Any] = ["sqlite"]
    params.append(pytest.param("postgres", marks=pytest.mark.postgres))
    return params


@pytest.fixture(params=_backends())
def db_backend(request: pytest.FixtureRequest) -> str:
    if request.param == "postgres" and not POSTGRES_URL:
        pytest.skip("GRAVITY_TEST_POSTGRES_URL is not set: PostgreSQL variant not run")
    return str(request.param)


async def make_database(backend: str, tmp_path: Path) -> tuple[Database, str, str | None]:
    """A fresh, empty database: a new SQLite file, or a new PostgreSQL schema."""
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'gravity.db'}"
        return Database(url), url, None
    assert POSTGRES_URL
    schema = "t_" + secrets.token_hex(6)
    admin = Database(POSTGRES_URL)
    from sqlalchemy import text

    async with admin.engine.begin() as conn:
        await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    await admin.dispose()
    return Database(POSTGRES_URL, schema=schema), POSTGRES_URL, schema


async def drop_schema(schema: str | None) -> None:
    if schema is None or not POSTGRES_URL:
        return
    from sqlalchemy import text

    admin = Database(POSTGRES_URL)
    async with admin.engine.begin() as conn:
        await conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    await admin.dispose()


@pytest.fixture
async def database(db_backend: str, tmp_path: Path) -> AsyncIterator[Database]:
    db, _, schema = await make_database(db_backend, tmp_path)
    await db.create_all()
    try:
        yield db
    finally:
        await db.dispose()
        await drop_schema(schema)


# --- DNS: tests never resolve real names ------------------------------------------------------
class FakeResolver:
    """Answers from a table and records every lookup; an unknown name fails like NXDOMAIN."""

    def __init__(self, table: dict[str, list[str]] | None = None) -> None:
        self.table = dict(DNS_TABLE if table is None else table)
        self.calls: list[tuple[str, int]] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.calls.append((host, port))
        if host not in self.table:
            raise OSError(f"fake DNS: {host} does not resolve")
        return self.table[host]


DNS_TABLE: dict[str, list[str]] = {
    "hooks.example.com": ["93.184.216.34"],
    "dual.example.com": ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"],
    "rebind.example.com": ["93.184.216.34", "10.0.0.5"],
    "internal.example.com": ["192.168.1.10"],
    "v6local.example.com": ["fd12:3456::1"],
    "mapped.example.com": ["::ffff:127.0.0.1"],
}


@pytest.fixture
def resolver() -> FakeResolver:
    return FakeResolver()


# --- the gateway -------------------------------------------------------------------------------
@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        env="test",
        data_dir=tmp_path,
        rc_client_id="test-client",
        rc_client_secret="test-secret",
        public_url="http://gateway.test",
        _env_file=None,
    )  # type: ignore[call-arg]


@pytest.fixture
async def gateway(
    settings: Settings, clock: ManualClock, database: Database, resolver: FakeResolver
) -> AsyncIterator[Any]:
    gw = await build_gateway(settings, clock=clock, db=database, resolver=resolver)
    yield gw
    if gw.dispatcher is not None:
        await gw.dispatcher.close()  # its webhook client's keep-alive connections


@pytest.fixture
async def runtime(gateway: Any) -> AsyncIterator[Runtime]:
    rt = Runtime(gateway, workers=False)
    yield rt
    # ASGITransport runs no lifespan: finish the background lastUsedAt writes before the database closes.
    await rt.app.state.auth.drain()


@pytest.fixture
async def client(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=runtime.app, client=("10.9.8.7", 5555))
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as c:
        yield c


@contextlib.asynccontextmanager
async def client_for(
    settings: Settings,
    clock: ManualClock,
    database: Database,
    *,
    client_ip: str = "10.9.8.7",
    resolver: Any = None,
    **overrides: Any,
) -> AsyncIterator[tuple[Any, httpx.AsyncClient]]:
    """A second gateway on the same database with changed settings (production, limits, proxy…).

    Yields (gateway, client). `resolver` replaces DNS for the webhook-URL guard.
    """
    custom = settings.model_copy(update=overrides)
    gw = await build_gateway(custom, clock=clock, db=database, resolver=resolver or FakeResolver())
    rt = Runtime(gw, workers=False)
    transport = httpx.ASGITransport(app=rt.app, client=(client_ip, 5555))
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as c:
        yield gw, c
    await rt.app.state.auth.drain()
    if gw.dispatcher is not None:
        await gw.dispatcher.close()


@dataclass
class Actor:
    """A tenant with an app key (and the raw registration answer)."""

    tenant_id: str
    app_id: str
    key: str
    secret: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


async def make_actor(
    gw: Any,
    name: str = "Acme",
    role: str = "app",
    tenant_id: str | None = None,
    webhook_url: str | None = None,
) -> Actor:
    if tenant_id is None:
        tenant_id = (await gw.tenants.create(name)).id
    created = await gw.apps.register(
        None, {"name": f"{name} {role}", "tenantId": tenant_id, "role": role, "webhookUrl": webhook_url}
    )
    return Actor(tenant_id=tenant_id, app_id=created["appId"], key=created["apiKey"], secret=created["webhookSecret"])


@pytest.fixture
async def admin(gateway: Any) -> Actor:
    return await make_actor(gateway, "Operator", role="admin")


@pytest.fixture
async def tenant_a(gateway: Any) -> Actor:
    return await make_actor(gateway, "Tenant A")


@pytest.fixture
async def tenant_b(gateway: Any) -> Actor:
    return await make_actor(gateway, "Tenant B")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def pytest_report_header() -> list[str]:
    return [
        f"postgres: {'on' if POSTGRES_URL else 'off (set GRAVITY_TEST_POSTGRES_URL)'}",
        f"redis: {'on' if REDIS_URL else 'off (set GRAVITY_TEST_REDIS_URL)'}",
    ]


@pytest.fixture
def fixtures_dir() -> Iterator[Path]:
    yield Path(__file__).parent / "fixtures" / "ringcentral"
