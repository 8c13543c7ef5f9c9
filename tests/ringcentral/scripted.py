"""A scripted HTTP transport: expected requests in order, each with its scripted answer.

A request that does not match the next script fails the test at once; `assert_done()` fails on
scripts left unused.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import httpx


@dataclass
class Expect:
    method: str
    path: str
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    check: Callable[[httpx.Request], None] | None = None
    raises: Exception | None = None


class Script:
    def __init__(self, *steps: Expect) -> None:
        self.steps = list(steps)
        self.seen: list[httpx.Request] = []
        self.transport = httpx.MockTransport(self._handle)

    def _handle(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        assert self.steps, f"unexpected request {request.method} {request.url.path}"
        step = self.steps.pop(0)
        assert (request.method, request.url.path) == (step.method, step.path), (
            f"expected {step.method} {step.path}, got {request.method} {request.url.path}"
        )
        if step.check is not None:
            step.check(request)
        if step.raises is not None:
            raise step.raises
        content = b"" if step.body is None else json.dumps(step.body).encode()
        headers = {"content-type": "application/json", **step.headers} if step.body is not None else step.headers
        return httpx.Response(step.status, content=content, headers=headers)

    def assert_done(self) -> None:
        assert not self.steps, f"unused scripts: {[(s.method, s.path) for s in self.steps]}"


def form(request: httpx.Request) -> dict[str, str]:
    return {k: v[-1] for k, v in parse_qs(request.content.decode()).items()}
