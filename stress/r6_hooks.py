"""Schemathesis hooks for R6 (loaded through `SCHEMATHESIS_HOOKS`).

1. Client addresses. Schemathesis' negative cases present bad API keys, and the gateway's
   brute-force guard blocks a client address after 10 failed authentications. R6 runs the
   gateway with `GRAVITY_TRUST_PROXY=true`, and `before_call` gives every request its own
   `X-Forwarded-For` address (the gateway takes the last hop), so no case is answered 429
   because of earlier ones and every operation's logic is reached.
2. Real ids. Generated path parameters (`appId`, `messageId`, `triggerId`, `tenantId`) are
   random, so an operation behind them only ever answers "not found" or "invalid format".
   When `GRAVITY_R6_IDS` names the JSON file the suite wrote after its setup, every other
   case of an operation with path parameters (alternating, so both kinds stay) gets ids
   of resources that exist:
   - reads and harmless writes (GET app, test-webhook, webhook-deliveries,
     rotate-webhook-secret, GET message status, GET tenant) use resources made once in the
     setup (apps with a working, a dead and no webhook URL; sent and received messages);
   - `PUT /v1/apps/{appId}` uses apps kept for editing, `PUT /v1/tenants/{tenantId}` a spare
     tenant (a generated status may suspend it: never the admin key's tenant);
   - destructive calls (`DELETE /v1/apps/{appId}`, `POST .../rotate-key`,
     `DELETE /v1/triggers/.../{triggerId}`) get a resource created for that one case just
     before it is sent, so they never remove what another case (or the admin key) needs.
   Schemathesis itself also reuses ids it saw in responses, including the admin key's own app
   and tenant: a case that would delete, rotate or suspend one of those (or change a read-pool
   app) is sent to a spare resource instead (`GUARDED`).
   Every call is logged to the file named by `log` (operation, which ids, status) and the suite
   counts from it.
"""

from __future__ import annotations

import itertools
import json
import os
import threading
from typing import Any

import schemathesis

_counter = itertools.count(1)
_lock = threading.Lock()
_turn: dict[str, int] = {}
_pending: dict[int, tuple[str, str]] = {}
_config: dict[str, Any] | None = None
_http: Any = None

# operation -> parameter -> pool; a "new:<kind>" pool creates the resource for the case
PLAN: dict[str, dict[str, str]] = {
    "GET /v1/apps/{appId}": {"appId": "apps_read"},
    "PUT /v1/apps/{appId}": {"appId": "apps_edit"},
    "DELETE /v1/apps/{appId}": {"appId": "new:app"},
    "POST /v1/apps/{appId}/rotate-key": {"appId": "new:app"},
    "POST /v1/apps/{appId}/rotate-webhook-secret": {"appId": "apps_read"},
    "POST /v1/apps/{appId}/test-webhook": {"appId": "apps_read"},
    "GET /v1/apps/{appId}/webhook-deliveries": {"appId": "apps_read"},
    "GET /v1/sms/status/{messageId}": {"messageId": "messages"},
    "DELETE /v1/triggers/sms-received/subscribe/{triggerId}": {"triggerId": "new:trigger"},
    "GET /v1/tenants/{tenantId}": {"tenantId": "tenants_read"},
    "PUT /v1/tenants/{tenantId}": {"tenantId": "tenants_edit"},
}


# Calls that would break the rest of the run when they hit the admin key's app or tenant, or
# the resources of the read pools: schemathesis also reuses ids it saw in earlier responses
# (`GET /v1/tenants` lists the admin's own tenant, `GET /v1/apps` its app), so a generated
# `PUT /v1/tenants/{tenantId}` with `"status": "suspended"` could lock the admin key out.
# Such a case is sent to a spare resource instead (same body, same checks).
GUARDED: dict[str, dict[str, str]] = {
    "PUT /v1/tenants/{tenantId}": {"tenantId": "tenants_edit"},
    "PUT /v1/apps/{appId}": {"appId": "apps_edit"},
    "DELETE /v1/apps/{appId}": {"appId": "new:app"},
    "POST /v1/apps/{appId}/rotate-key": {"appId": "new:app"},
}


def next_address() -> str:
    """A fresh address in 10.0.0.0/8 for each call (16.7 million before it wraps)."""
    n = next(_counter) % (1 << 24)
    return f"10.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}"


def config() -> dict[str, Any] | None:
    global _config
    if _config is None:
        path = os.environ.get("GRAVITY_R6_IDS")
        _config = json.loads(open(path).read()) if path else {}
    return _config or None


def _create(kind: str, cfg: dict[str, Any]) -> str | None:
    """A fresh app or trigger in the setup's tenant, for one destructive case."""
    global _http
    import httpx

    if _http is None:
        _http = httpx.Client(timeout=10, headers={"Authorization": f"Bearer {cfg['key']}"})
    headers = {"X-Forwarded-For": next_address()}
    if kind == "app":
        body = {"name": "r6 spare", "tenantId": cfg["tenantId"]}
        r = _http.post(f"{cfg['base']}/v1/apps/register", json=body, headers=headers)
        return str(r.json()["appId"]) if r.status_code == 201 else None
    body = {"callbackUrl": cfg["callbackUrl"]}
    r = _http.post(f"{cfg['base']}/v1/triggers/sms-received/subscribe", json=body, headers=headers)
    return str(r.json()["id"]) if r.status_code == 201 else None


def operation_of(case: Any) -> str | None:
    op = getattr(case, "operation", None)
    if op is None:
        return None
    return f"{str(op.method).upper()} {op.path}"


def _pick(pool: str, turn: int, cfg: dict[str, Any]) -> str | None:
    if pool.startswith("new:"):
        return _create(pool[4:], cfg)
    values = cfg["pools"][pool]
    return str(values[turn % len(values)])


def use_real_ids(case: Any) -> str:
    """Every other case of a planned operation gets real ids ("real"); a case that would
    damage a protected resource gets a spare one ("guarded"); else "generated"."""
    cfg = config()
    name = operation_of(case) or ""
    plan = PLAN.get(name)
    if cfg is None or plan is None or not isinstance(getattr(case, "path_parameters", None), dict):
        return "generated"
    with _lock:
        turn = _turn.get(name, 0)
        _turn[name] = turn + 1
    params = dict(case.path_parameters)
    if turn % 2 == 0:
        for param, pool in plan.items():
            value = _pick(pool, turn // 2, cfg)
            if value is None:
                return "generated"
            params[param] = value
        case.path_parameters = params
        return "real"
    protected = cfg.get("protected", {})
    hits = [p for p in GUARDED.get(name, {}) if str(params.get(p)) in protected.get(p, ())]
    for param in hits:
        value = _pick(GUARDED[name][param], turn, cfg)
        if value is None:
            return "generated"
        params[param] = value
    if not hits:
        return "generated"
    case.path_parameters = params
    return "guarded"


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    headers = dict(case.headers or {})
    headers["X-Forwarded-For"] = next_address()
    case.headers = headers
    name = operation_of(case)
    if name is not None:
        _pending[id(case)] = (name, use_real_ids(case))


@schemathesis.hook
def after_call(context: Any, case: Any, response: Any) -> None:
    name, ids = _pending.pop(id(case), (operation_of(case) or "?", "generated"))
    cfg = config()
    if cfg is not None and cfg.get("log"):
        line = json.dumps({"op": name, "ids": ids, "status": getattr(response, "status_code", None)})
        with _lock, open(cfg["log"], "a") as log:
            log.write(line + "\n")
