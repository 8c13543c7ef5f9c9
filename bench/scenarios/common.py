"""What every scenario receives: the run's sizes, the load generator, the shared baseline."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bench.loadgen import LoadResult, closed_loop

EVENT_TEMPLATE: dict[str, Any] = {
    "uuid": "__ID__",
    "event": "/restapi/v1.0/account/402118231008/extension/{ext}/message-store/instant?type=SMS",
    "timestamp": "2026-03-01T14:30:00.120Z",
    "subscriptionId": "{sub}",
    "ownerId": "{ext}",
    "body": {
        "id": "__ID__",
        "to": [{"phoneNumber": "{to}", "name": "Front Desk", "target": True}],
        "from": {"phoneNumber": "+15551234567", "location": "Chicago, IL"},
        "type": "SMS",
        "creationTime": "2026-03-01T14:30:00.000Z",
        "lastModifiedTime": "2026-03-01T14:30:00.000Z",
        "readStatus": "Unread",
        "priority": "Normal",
        "attachments": [{"id": "__ID__", "type": "Text", "contentType": "text/plain"}],
        "direction": "Inbound",
        "availability": "Alive",
        "subject": "Hey, is my appointment still on?",
        "messageStatus": "Received",
        "conversation": {"id": "7312098475610293847"},
        "eventType": "Create",
        "owner": {"extensionId": "{ext}", "extensionType": "User", "name": "Front Desk"},
    },
}
SEND_BODY = '{"to":"+15551234567","from":"+15550010000","body":"Your appointment is confirmed for 3pm."}'


def event_body(sub: str, ext: str, to: str) -> str:
    """An instant-SMS event (ringcentral.md §3, the recorded fixture's shape) with __ID__ marks."""
    import json

    text = json.dumps(EVENT_TEMPLATE, separators=(",", ":"))
    return text.replace("{sub}", sub).replace("{ext}", ext).replace("{to}", to)


@dataclass
class Ctx:
    quick: bool
    prefer_wrk: bool = True
    connections: int = 64
    baseline: LoadResult | None = None
    profile: bool = False
    cache: dict[str, Any] = field(default_factory=dict)

    duration_override: float | None = None

    @property
    def duration(self) -> float:
        if self.duration_override is not None:
            return self.duration_override
        return 2.0 if self.quick else 20.0

    def load(self, url: str, **kw: Any) -> LoadResult:
        kw.setdefault("connections", self.connections)
        kw.setdefault("duration", self.duration)
        return closed_loop(url, prefer_wrk=self.prefer_wrk, **kw)


def profiled(ctx: Ctx, out: Any, pid: int, seconds: float) -> Any:
    """A py-spy profile of `pid` around a load run when --profile is on; records its summary."""
    import contextlib

    from bench import report
    from bench.profile import Profiler

    if not ctx.profile:
        return contextlib.nullcontext()
    path = report.RESULTS / f"{out.id.lower()}-profile.folded"
    prof = Profiler(pid, seconds, path)

    @contextlib.contextmanager
    def wrap() -> Any:
        with prof:
            yield prof
        out.metrics["profile"] = prof.summary() | {"folded": str(path)}

    return wrap()


def ms(value: float) -> str:
    return f"{value:.1f} ms" if value >= 1 else f"{value:.2f} ms"


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"
