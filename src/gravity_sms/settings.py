"""The one typed settings object (operations.md §2), built once and passed down."""

from __future__ import annotations

import base64
import binascii
import secrets
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class ConfigError(Exception):
    """Invalid configuration: one clear line naming the variable."""


def _http_url(value: str) -> str:
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        parts = urlsplit("")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an absolute http:// or https:// URL")
    return value.rstrip("/")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GRAVITY_", env_file=".env", extra="ignore", case_sensitive=False)

    env: Literal["development", "production", "test"] = "development"
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    public_url: str | None = None
    data_dir: Path = Path("./data")
    database_url: str | None = None
    redis_url: str | None = None
    rc_server_url: str = "https://platform.ringcentral.com"
    rc_client_id: str | None = None
    rc_client_secret: str | None = None
    encryption_key: str | None = None
    webhook_timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    block_private_webhooks: bool | None = None
    trust_proxy: bool = False
    rate_limit_app: int = Field(default=100, ge=1)
    rate_limit_admin: int = Field(default=500, ge=1)
    send_rate_per_number: int = Field(default=40, ge=1)
    message_retention_days: int = Field(default=90, ge=1)
    delivery_log_retention_days: int = Field(default=30, ge=1)
    log_level: Literal["debug", "info", "warning", "error", "critical"] = "info"
    log_format: Literal["console", "json"] | None = None
    metrics_enabled: bool = True

    @field_validator("env", "log_level", "log_format", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("public_url")
    @classmethod
    def _check_public_url(cls, value: str | None) -> str | None:
        return None if value is None or value == "" else _http_url(value)

    @field_validator("rc_server_url")
    @classmethod
    def _check_rc_server_url(cls, value: str) -> str:
        return _http_url(value)

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        scheme = value.split(":", 1)[0].split("+", 1)[0].lower() if ":" in value else ""
        if scheme not in ("sqlite", "postgresql", "postgres"):
            raise ValueError("must start with sqlite:/// or postgresql://")
        return value

    @field_validator("encryption_key")
    @classmethod
    def _check_key(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        try:
            raw = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ValueError("must be base64 of 32 bytes") from exc
        if len(raw) != 32:
            raise ValueError("must be base64 of 32 bytes")
        return value

    @model_validator(mode="after")
    def _production_rules(self) -> Settings:
        if self.env == "production" and not self.encryption_key:
            raise ValueError("GRAVITY_ENCRYPTION_KEY is required when GRAVITY_ENV=production")
        return self

    @property
    def is_production(self) -> bool:
        return self.env == "production"

    @property
    def block_private(self) -> bool:
        return self.is_production if self.block_private_webhooks is None else self.block_private_webhooks

    @property
    def effective_public_url(self) -> str:
        return self.public_url or f"http://{self.host}:{self.port}"

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'gravity.db'}"

    @property
    def effective_log_format(self) -> str:
        return self.log_format or ("json" if self.is_production else "console")

    def encryption_key_bytes(self) -> bytes:
        """The AES-256 key; in development generated once into the data dir."""
        if self.encryption_key:
            return base64.b64decode(self.encryption_key)
        path = self.data_dir / "encryption.key"
        if path.exists():
            return base64.b64decode(path.read_text().strip())
        self.data_dir.mkdir(parents=True, exist_ok=True)
        key = secrets.token_bytes(32)
        path.write_text(base64.b64encode(key).decode() + "\n")
        path.chmod(0o600)
        return key


def describe_errors(exc: ValidationError) -> list[str]:
    """One line per bad variable, each naming it (`GRAVITY_PORT: Input should be ...`)."""
    lines: list[str] = []
    for err in exc.errors():
        loc = "_".join(str(p) for p in err.get("loc", ()) if p != "__root__")
        msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        line = f"Invalid configuration: GRAVITY_{loc.upper()}: {msg}" if loc else f"Invalid configuration: {msg}"
        if line not in lines:
            lines.append(line)
    return lines


def load_settings(**overrides: object) -> Settings:
    """Build settings from the environment (and `.env`); every bad variable becomes one line."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise ConfigError("\n".join(describe_errors(exc))) from None
