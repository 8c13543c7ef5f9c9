"""Test support for the inbound path: a connected tenant without the OAuth flow, RingCentral
event bodies, and webhook receivers on real loopback sockets whose behaviour a test chooses."""

from __future__ import annotations

import asyncio
import copy
import json
import secrets
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import insert

from gravity_sms.crypto import AesGcmBox
from gravity_sms.store import Database
from gravity_sms.store.tables import rc_extensions, rc_phone_numbers, rc_subscriptions

FIXTURES = Path(__file__).parent / "fixtures" / "ringcentral"
EXT = "402118233008"
NUMBER = "+15559876543"
SENDER = "+15551234567"
WEBHOOK = "/v1/webhooks/ringcentral"


def fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    return data


@dataclass
class Connection:
    tenant_id: str
    subscription_id: str
    token: str
    extension_id: str
    numbers: tuple[str, ...]

    @property
    def headers(self) -> dict[str, str]:
        return {"Verification-Token": self.token, "Content-Type": "application/json; charset=UTF-8"}


async def connect_tenant(
    db: Database,
    tenant_id: str,
    *,
    subscription_id: str | None = None,
    token: str | None = None,
    extension_id: str = EXT,
    numbers: tuple[str, ...] = (NUMBER,),
    subscription_status: str = "Active",
    extension_status: str = "connected",
    at: Any = None,
) -> Connection:
    """The rows the OAuth callback would write: extension, numbers, subscription (token hashed)."""
    from datetime import UTC, datetime

    now = at or datetime.now(UTC)
    sub_id = subscription_id or f"sub-{secrets.token_hex(8)}"
    token = token or secrets.token_urlsafe(24)
    token_hash = AesGcmBox(b"\0" * 32).hash(token)  # SHA-256 hex, as box.hash anywhere
    async with db.write() as conn:
        await conn.execute(
            insert(rc_extensions).values(
                tenant_id=tenant_id,
                extension_id=extension_id,
                account_id="402118231008",
                status=extension_status,
                created_at=now,
                updated_at=now,
            )
        )
        for number in numbers:
            await conn.execute(
                insert(rc_phone_numbers).values(
                    tenant_id=tenant_id,
                    phone_number=number,
                    extension_id=extension_id,
                    features='["SmsSender"]',
                    sms_enabled=True,
                )
            )
        await conn.execute(
            insert(rc_subscriptions).values(
                id=sub_id,
                tenant_id=tenant_id,
                extension_id=extension_id,
                verification_token_hash=token_hash,
                status=subscription_status,
                created_at=now,
                updated_at=now,
            )
        )
    return Connection(tenant_id, sub_id, token, extension_id, numbers)


def sms_event(
    conn: Connection,
    *,
    rc_id: str | None = None,
    text: str = "Hey, is my appointment still on?",
    sender: str = SENDER,
    to: str | None = None,
    shape: str = "event__instant_sms_inbound",
) -> dict[str, Any]:
    """An instant-SMS notification in one of the recorded shapes, for this connection."""
    event = copy.deepcopy(fixture(shape))
    event["subscriptionId"] = conn.subscription_id
    body = event["body"]
    body["id"] = rc_id or str(secrets.randbelow(10**13))
    body["subject"] = text
    body["from"]["phoneNumber"] = sender
    body["to"][0]["phoneNumber"] = to or conn.numbers[0]
    return event


def encode(event: Any) -> bytes:
    return json.dumps(event, ensure_ascii=False).encode("utf-8")


# --- webhook receivers on real sockets ---------------------------------------------------------
@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """A tiny HTTP/1.1 server. `mode`: ok | 500 | hang | close | huge | redirect | slow-ok."""

    mode: str = "ok"
    redirect_to: str = "http://127.0.0.1:9/elsewhere"
    hang_seconds: float = 30.0
    slow_seconds: float = 0.1
    received: list[Received] = field(default_factory=list)
    answered: int = 0
    connections: int = 0
    port: int = 0
    _server: asyncio.Server | None = None
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)
    _handlers: set[asyncio.Task[Any]] = field(default_factory=set)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def start(self) -> Receiver:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for task in list(self._handlers):
                task.cancel()
            if self._handlers:
                await asyncio.wait(list(self._handlers))
            await self._server.wait_closed()

    async def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        async with asyncio.timeout(timeout):
            while len(self.received) < count:
                self._arrived.clear()
                await self._arrived.wait()
        return self.received

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        name, value = line.split(":", 1)
                        headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                self.received.append(Received(method, path, headers, body))
                self._arrived.set()
                if not await self._respond(writer):
                    return
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()
            self._handlers.discard(task)

    async def _respond(self, writer: asyncio.StreamWriter) -> bool:
        mode = self.mode
        if mode == "hang":
            await asyncio.sleep(self.hang_seconds)
            return False
        if mode == "close":
            return False
        if mode == "slow-ok":
            await asyncio.sleep(self.slow_seconds)
        if mode == "huge":
            size = 10 * 1024 * 1024
            writer.write(f"HTTP/1.1 200 OK\r\nContent-Length: {size}\r\nContent-Type: text/plain\r\n\r\n".encode())
            chunk = b"x" * 65536
            for _ in range(size // len(chunk)):
                writer.write(chunk)
                await writer.drain()
            return False
        if mode == "redirect":
            reply = f"HTTP/1.1 302 Found\r\nLocation: {self.redirect_to}\r\nContent-Length: 0\r\n\r\n".encode()
        elif mode == "500":
            reply = b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\n\r\nnope"
        else:
            reply = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 8\r\n\r\nreceived"
            self.answered += 1
        writer.write(reply)
        await writer.drain()
        return True


async def wait_until(predicate: Callable[[], Awaitable[bool]], timeout: float = 10.0, step: float = 0.05) -> None:
    """Bounded polling for work done by another process or server."""
    async with asyncio.timeout(timeout):
        while not await predicate():
            await asyncio.sleep(step)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port
