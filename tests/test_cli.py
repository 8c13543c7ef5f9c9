"""The command line (operations.md §3), run as a real process against a temporary SQLite data dir."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from gravity_sms.cli import main

pytestmark = pytest.mark.slow


def run(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("GRAVITY_")}
    clean.update({"GRAVITY_DATA_DIR": str(tmp_path / "data"), **env})
    return subprocess.run(
        [sys.executable, "-m", "gravity_sms.cli", *args],
        cwd=tmp_path,  # no stray .env
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def in_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> pytest.CaptureFixture[str]:
    """`main()` in this process (faster than a subprocess for the cases that need no isolation)."""
    for name in list(os.environ):
        if name.startswith("GRAVITY_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("GRAVITY_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path)
    return capsys


def ok(tmp_path: Path, *args: str) -> Any:
    result = run(tmp_path, *args)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_bootstrap_an_admin_on_an_empty_database(tmp_path: Path) -> None:
    assert ok(tmp_path, "migrate")["ok"] is True
    tenant = ok(tmp_path, "tenant", "create", "--name", "Operator")
    assert set(tenant) == {"tenantId", "name", "status", "createdAt", "updatedAt"}
    assert tenant["status"] == "active"
    admin = ok(tmp_path, "app", "create", "--tenant", tenant["tenantId"], "--name", "root", "--role", "admin")
    assert set(admin) == {
        "appId",
        "name",
        "apiKey",
        "apiKeyPrefix",
        "webhookSecret",
        "role",
        "tenantId",
        "webhookUrl",
        "createdAt",
    }
    assert admin["role"] == "admin" and admin["apiKey"].startswith("sgw_")

    listed = ok(tmp_path, "app", "list", "--tenant", tenant["tenantId"])["apps"]
    assert [a["appId"] for a in listed] == [admin["appId"]]
    assert "apiKey" not in listed[0]
    assert [t["tenantId"] for t in ok(tmp_path, "tenant", "list")["tenants"]] == [tenant["tenantId"]]

    rotated = ok(tmp_path, "app", "rotate-key", admin["appId"])
    assert set(rotated) == {"apiKey", "apiKeyPrefix"} and rotated["apiKey"] != admin["apiKey"]
    suspended = ok(tmp_path, "tenant", "set-status", tenant["tenantId"], "suspended")
    assert suspended["status"] == "suspended"

    # Keys rest only as hashes: no plaintext in the database files.
    raw = b"".join(p.read_bytes() for p in (tmp_path / "data").glob("gravity.db*"))
    for secret in (admin["apiKey"], rotated["apiKey"], admin["webhookSecret"]):
        assert secret.encode() not in raw
    with sqlite3.connect(tmp_path / "data" / "gravity.db") as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("tenant", "create", "--name", ""), "gravity-sms: name must be 1-100 characters"),
        (("tenant", "set-status", "tenant_ffffffffffffffff", "active"), "gravity-sms: Tenant not found"),
        (("tenant", "set-status", "nope", "active"), "gravity-sms: Invalid tenantId format"),
        (
            ("app", "create", "--tenant", "tenant_ffffffffffffffff", "--name", "x"),
            "gravity-sms: Tenant not found or not active",
        ),
        (("app", "rotate-key", "app_ffffffffffffffff"), "gravity-sms: App not found"),
        (("app", "list", "--tenant", "bad"), "gravity-sms: Invalid tenantId format"),
    ],
)
def test_failures_are_one_line_and_non_zero(
    in_process: pytest.CaptureFixture[str], args: tuple[str, ...], message: str
) -> None:
    assert main(list(args)) != 0
    out, err = in_process.readouterr()
    assert (out, err.strip()) == ("", message)


def test_bad_configuration_is_one_line_per_variable(tmp_path: Path) -> None:
    result = run(tmp_path, "tenant", "list", GRAVITY_PORT="eighty", GRAVITY_ENV="production")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines == [
        "gravity-sms: Invalid configuration: GRAVITY_PORT: Input should be a valid integer, unable to parse string as an integer"
    ]
    result = run(tmp_path, "migrate", GRAVITY_ENV="production")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "gravity-sms: Invalid configuration: GRAVITY_ENCRYPTION_KEY is required when GRAVITY_ENV=production"
    )
    assert "Traceback" not in result.stderr


def test_usage_errors_are_one_line(tmp_path: Path) -> None:
    result = run(tmp_path, "tenant", "set-status", "tenant_ffffffffffffffff", "deleted")
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and "invalid choice" in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        (),
        ("serve",),
        ("worker",),
        ("migrate",),
        ("tenant",),
        ("tenant", "create"),
        ("app",),
        ("app", "create"),
        ("app", "list"),
        ("app", "rotate-key"),
    ],
)
def test_help_documents_every_command(in_process: pytest.CaptureFixture[str], args: tuple[str, ...]) -> None:
    with pytest.raises(SystemExit) as exc:
        main([*args, "--help"])
    assert exc.value.code == 0
    assert in_process.readouterr().out.startswith("usage: gravity-sms")


def test_servers_run_on_uvloop() -> None:
    """uvicorn picks uvloop only in Server.run(); the CLI chooses the loop for serve/worker/demo."""
    import asyncio

    from gravity_sms.cli import _run_server

    seen: list[str] = []

    async def probe() -> None:
        seen.append(type(asyncio.get_running_loop()).__module__)

    _run_server(probe())
    assert seen and seen[0].startswith("uvloop")
