"""Settings (operations.md §2): defaults, production rules, one line per bad variable."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from gravity_sms.settings import ConfigError, Settings, load_settings

KEY = base64.b64encode(b"k" * 32).decode()


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("GRAVITY_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # no stray .env


def test_defaults_match_operations_md() -> None:
    s = load_settings()
    assert (s.env, s.host, s.port) == ("development", "127.0.0.1", 8080)
    assert s.effective_public_url == "http://127.0.0.1:8080"
    assert s.effective_database_url == f"sqlite:///{Path('data') / 'gravity.db'}"
    assert s.redis_url is None
    assert s.rc_server_url == "https://platform.ringcentral.com"
    assert s.webhook_timeout_seconds == 5
    assert s.block_private is False
    assert s.trust_proxy is False
    assert (s.rate_limit_app, s.rate_limit_admin, s.send_rate_per_number) == (100, 500, 40)
    assert (s.message_retention_days, s.delivery_log_retention_days) == (90, 30)
    assert (s.log_level, s.effective_log_format, s.metrics_enabled) == ("info", "console", True)


def test_production_turns_on_guards(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRAVITY_ENV", "production")
    monkeypatch.setenv("GRAVITY_ENCRYPTION_KEY", KEY)
    s = load_settings()
    assert s.is_production and s.block_private and s.effective_log_format == "json"
    assert s.encryption_key_bytes() == b"k" * 32
    monkeypatch.setenv("GRAVITY_BLOCK_PRIVATE_WEBHOOKS", "false")
    assert load_settings().block_private is False


def test_production_requires_encryption_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRAVITY_ENV", "production")
    with pytest.raises(ConfigError) as exc:
        load_settings()
    assert str(exc.value) == "Invalid configuration: GRAVITY_ENCRYPTION_KEY is required when GRAVITY_ENV=production"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("GRAVITY_ENV", "staging"),
        ("GRAVITY_PORT", "http"),
        ("GRAVITY_PORT", "70000"),
        ("GRAVITY_PUBLIC_URL", "gateway.example.com"),
        ("GRAVITY_DATABASE_URL", "mysql://db/x"),
        ("GRAVITY_RC_SERVER_URL", "ftp://rc"),
        ("GRAVITY_ENCRYPTION_KEY", "not-base64!"),
        ("GRAVITY_ENCRYPTION_KEY", base64.b64encode(b"short").decode()),
        ("GRAVITY_WEBHOOK_TIMEOUT_SECONDS", "0"),
        ("GRAVITY_BLOCK_PRIVATE_WEBHOOKS", "sometimes"),
        ("GRAVITY_TRUST_PROXY", "perhaps"),
        ("GRAVITY_RATE_LIMIT_APP", "0"),
        ("GRAVITY_RATE_LIMIT_ADMIN", "many"),
        ("GRAVITY_SEND_RATE_PER_NUMBER", "-1"),
        ("GRAVITY_MESSAGE_RETENTION_DAYS", "0"),
        ("GRAVITY_DELIVERY_LOG_RETENTION_DAYS", "x"),
        ("GRAVITY_LOG_LEVEL", "loud"),
        ("GRAVITY_LOG_FORMAT", "xml"),
        ("GRAVITY_METRICS_ENABLED", "2"),
    ],
)
def test_bad_variable_is_one_line_naming_it(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as exc:
        load_settings()
    lines = str(exc.value).splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"Invalid configuration: {name}: ")
    assert value not in lines[0] or name != "GRAVITY_ENCRYPTION_KEY"  # a key is never echoed


def test_several_bad_variables_give_one_line_each(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRAVITY_PORT", "x")
    monkeypatch.setenv("GRAVITY_TRUST_PROXY", "x")
    with pytest.raises(ConfigError) as exc:
        load_settings()
    lines = str(exc.value).splitlines()
    assert [line.split(":")[1].strip() for line in lines] == ["GRAVITY_PORT", "GRAVITY_TRUST_PROXY"]


def test_values_are_case_insensitive_where_it_helps(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRAVITY_LOG_LEVEL", "DEBUG")
    monkeypatch.setenv("GRAVITY_LOG_FORMAT", "JSON")
    monkeypatch.setenv("GRAVITY_PUBLIC_URL", "https://sms.example.com/")
    s = load_settings()
    assert (s.log_level, s.effective_log_format) == ("debug", "json")
    assert s.effective_public_url == "https://sms.example.com"


def test_dot_env_file_is_read(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("GRAVITY_PORT=9999\nGRAVITY_RATE_LIMIT_APP=7\n")
    s = load_settings()
    assert (s.port, s.rate_limit_app) == (9999, 7)


def test_development_key_is_generated_once_into_the_data_dir(tmp_path: Path) -> None:
    s = Settings(data_dir=tmp_path / "d", _env_file=None)  # type: ignore[call-arg]
    first = s.encryption_key_bytes()
    assert len(first) == 32
    assert (tmp_path / "d" / "encryption.key").stat().st_mode & 0o777 == 0o600
    assert s.encryption_key_bytes() == first
