"""What the reliability suites share: sizes, the unthrottled stack, and the counting helpers.

A suite never trusts the gateway's own account of itself: it counts what the emulator
(its SMS log, request log, and the tap of every notification it delivered) and the app
receivers actually saw, and compares with what the gateway acknowledged.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx
from bench.stack import Node, Stack, Tenant

# Limits lifted so the suites exercise failures, not pacing (B6 measures pacing).
UNTHROTTLED_EMULATOR: dict[str, Any] = {
    "rate_limits": {"Light": 1_000_000, "Medium": 1_000_000, "Heavy": 1_000_000, "Auth": 1_000_000},
    "blacklist_after_failures": 1_000_000,
}
EXT1, EXT2 = "402118230001", "402118230002"
NUMBERS1 = [f"+1555001{n:04d}" for n in range(10)]
NUMBER1 = NUMBERS1[0]
TERMINAL = {"sent", "delivered", "failed"}


@dataclass
class SCtx:
    quick: bool
    cache: dict[str, Any] = field(default_factory=dict)

    tiny: bool = False  # the smoke tests' sizes: a handful of items

    def size(self, full: int, quick: int) -> int:
        if self.tiny:
            return max(1, quick // 4)
        return quick if self.quick else full


def list_messages(node: Node, tenant: Tenant, direction: str) -> list[dict[str, Any]]:
    """Every message of the tenant in one direction, through the public listing."""
    out: list[dict[str, Any]] = []
    page = 1
    with httpx.Client(timeout=60) as http:
        while True:
            r = http.get(
                f"{node.url}/v1/sms/messages",
                params={"direction": direction, "page": page, "limit": 100},
                headers=tenant.headers,
            )
            r.raise_for_status()
            batch = r.json()["messages"]
            out.extend(batch)
            if len(batch) < 100:
                return out
            page += 1


def emulator_sms(st: Stack) -> list[dict[str, Any]]:
    assert st.emulator is not None
    return list(httpx.get(f"{st.emulator.url}/_emulator/sms", timeout=60).json()["sms"])


def receiver_records(st: Stack) -> list[tuple[str, str, float]]:
    assert st.receiver is not None
    return [tuple(r) for r in httpx.get(f"{st.receiver.url}/_dump", timeout=60).json()["records"]]  # type: ignore[misc]


def duplicates(values: Iterable[Any]) -> int:
    seen: set[Any] = set()
    dup = 0
    for v in values:
        if v in seen:
            dup += 1
        seen.add(v)
    return dup


class Sender:
    """Posts `n` sends with unique texts from a few threads; records what was accepted (202).

    A request that could not connect is retried (no server saw it). One that failed after it
    was sent is *not* accepted (the client never saw a 202) and is not retried: each text
    reaches the gateway at most once, so any repeat at RingCentral is the gateway's duplicate."""

    def __init__(self, base_url: Callable[[], str], key: str, n: int, tag: str, threads: int = 4) -> None:
        self.base_url, self.key, self.n, self.tag = base_url, key, n, tag
        self.accepted: dict[str, str] = {}  # text -> messageId
        self.refused: dict[int, int] = {}
        self.socket_errors = 0
        self.reconnects = 0
        self._retry: list[int] = []
        self._next = 0
        self._lock = threading.Lock()
        self.threads = [threading.Thread(target=self._work, daemon=True) for _ in range(threads)]

    def text(self, i: int) -> str:
        return f"{self.tag} send {i}"

    def _take(self) -> int | None:
        with self._lock:
            if self._retry:
                return self._retry.pop()
            if self._next >= self.n:
                return None
            self._next += 1
            return self._next - 1

    def _work(self) -> None:
        headers = {"Authorization": f"Bearer {self.key}"}
        with httpx.Client(timeout=10) as http:
            while (i := self._take()) is not None:
                body = {"to": f"+1555888{i % 10000:04d}", "from": NUMBERS1[i % len(NUMBERS1)], "body": self.text(i)}
                try:
                    r = http.post(f"{self.base_url()}/v1/sms/send", json=body, headers=headers)
                except httpx.ConnectError:
                    # never reached a server (it is down): nothing was accepted, so try again
                    with self._lock:
                        self.reconnects += 1
                        self._retry.append(i)
                    time.sleep(0.05)
                    continue
                except httpx.HTTPError:
                    with self._lock:
                        self.socket_errors += 1
                    time.sleep(0.05)
                    continue
                with self._lock:
                    if r.status_code == 202:
                        self.accepted[self.text(i)] = r.json()["messageId"]
                    else:
                        self.refused[r.status_code] = self.refused.get(r.status_code, 0) + 1

    def start(self) -> Sender:
        for t in self.threads:
            t.start()
        return self

    def join(self, timeout: float = 600) -> None:
        for t in self.threads:
            t.join(timeout)

    @property
    def progress(self) -> int:
        return self._next


class Injector:
    """Injects `n` inbound SMS through the emulator (which delivers each to the gateway's
    webhook, recorded by the tap), from one thread."""

    def __init__(self, st: Stack, n: int, tag: str, to: str = NUMBER1, pause: float = 0.01) -> None:
        self.st, self.n, self.tag, self.to, self.pause = st, n, tag, to, pause
        self.ids: list[str] = []
        self.thread = threading.Thread(target=self._work, daemon=True)

    def _work(self) -> None:
        assert self.st.emulator is not None
        with httpx.Client(timeout=30) as http:
            for i in range(self.n):
                body = {"from": "+15551230000", "to": self.to, "text": f"{self.tag} inbound {i}"}
                r = http.post(f"{self.st.emulator.url}/_emulator/inbound", json=body)
                if r.status_code == 200:
                    self.ids.append(str(r.json()["id"]))
                time.sleep(self.pause)

    def start(self) -> Injector:
        self.thread.start()
        return self

    def join(self, timeout: float = 600) -> None:
        self.thread.join(timeout)


def acked_event_ids(st: Stack) -> set[str]:
    """Events the gateway answered 200 to, as the emulator's tap saw them."""
    return {str(t["id"]) for t in st.tapped() if t.get("status") == 200 and t.get("id")}
