"""Request-scoped access to the wired gateway."""

from __future__ import annotations

from starlette.requests import HTTPConnection

from gravity_sms.container import Gateway


def gateway(conn: HTTPConnection) -> Gateway:
    gw: Gateway = conn.app.state.gateway
    return gw
