"""Smoke runs of the reliability suites (`python -m stress.run --quick`) with tiny sizes.

They check that the suites still run against real processes and end in a figure and a
verdict computed from what was counted; they never assert the verdict itself (the suites,
on a quiet machine, do that), except where a suite's counting logic is checked directly."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from stress.common import SCtx, duplicates
from stress.faults import retry_after_violations

from bench import report

pytestmark = pytest.mark.slow


def test_webhook_fuzzer_suite_ends_in_a_figure_and_verdict() -> None:
    from stress.fuzz import r6_fuzz

    outcome = r6_fuzz(SCtx(quick=True, tiny=True))  # the fuzzer half; schemathesis takes minutes
    assert outcome.verdict in report.VERDICTS and outcome.verdict != "ERROR", outcome.notes
    fuzz = outcome.metrics["webhook_fuzz"]
    assert fuzz["examples"] > 0 and sum(fuzz["answers"].values()) == fuzz["examples"]
    assert "webhook fuzzer" in outcome.figure


@pytest.mark.postgres
@pytest.mark.redis
def test_duplicate_events_across_nodes_are_counted() -> None:
    if not (os.environ.get("GRAVITY_TEST_POSTGRES_URL") and os.environ.get("GRAVITY_TEST_REDIS_URL")):
        pytest.skip("R3 needs PostgreSQL and Redis: set GRAVITY_TEST_POSTGRES_URL and GRAVITY_TEST_REDIS_URL")
    from stress.cluster import r3_duplicates

    outcome = r3_duplicates(SCtx(quick=True, tiny=True))
    assert outcome.verdict in ("PASS", "MISS")
    m = outcome.metrics
    assert m["copies"] >= m["events"] > 0
    assert "stored once" in outcome.figure


def test_retry_after_accounting_catches_an_early_call() -> None:
    calls = [
        {"at": "2026-03-01T14:30:00.000Z", "status": 429},
        {"at": "2026-03-01T14:30:00.100Z", "status": 200},  # already in flight: excused
        {"at": "2026-03-01T14:30:02.000Z", "status": 200},  # 2 s into a 5 s Retry-After
        {"at": "2026-03-01T14:30:06.000Z", "status": 200},
    ]
    assert retry_after_violations(calls, 5) == 1
    assert retry_after_violations([calls[0], calls[1], calls[3]], 5) == 0


def test_duplicate_counting() -> None:
    assert duplicates(["a", "b", "a", "a"]) == 2
    assert duplicates([]) == 0


def test_r6_hook_gives_every_request_its_own_client_address() -> None:
    from types import SimpleNamespace

    from stress.r6_hooks import before_call

    from gravity_sms.api.auth import pick_ip

    seen: set[str] = set()
    for headers in ({"Authorization": "Bearer bad"}, None, {"X-Forwarded-For": "10.0.0.1"}, {}):
        case = SimpleNamespace(headers=headers)
        before_call(None, case, {})
        assert case.headers is not None and "X-Forwarded-For" in case.headers
        seen.add(pick_ip(case.headers["X-Forwarded-For"], "127.0.0.1"))
    assert len(seen) == 4 and "127.0.0.1" not in seen


def _hook_case(method: str, path: str, **params: str) -> Any:
    return SimpleNamespace(
        operation=SimpleNamespace(method=method, path=path), path_parameters=dict(params), headers=None
    )


@pytest.fixture
def r6_ids(tmp_path: Path) -> Iterator[dict[str, Any]]:
    from stress import r6_hooks

    cfg: dict[str, Any] = {
        "log": str(tmp_path / "calls.jsonl"),
        "pools": {
            "apps_read": ["app_000000000000000a", "app_000000000000000b"],
            "apps_edit": ["app_00000000000000ed"],
            "messages": ["msg_00000000000a"],
            "tenants_read": ["tenant_00000000000000ad", "tenant_000000000000005e"],
            "tenants_edit": ["tenant_000000000000005e"],
        },
        "protected": {"appId": ["app_00000000000000ad"], "tenantId": ["tenant_00000000000000ad"]},
    }
    r6_hooks._config, r6_hooks._turn = cfg, {}
    yield cfg
    r6_hooks._config, r6_hooks._turn = None, {}


def test_r6_hook_gives_every_other_case_real_ids_and_logs_each_call(r6_ids: dict[str, Any]) -> None:
    from stress.fuzz import _count_calls
    from stress.r6_hooks import after_call, before_call

    sent = []
    for _ in range(4):
        case = _hook_case("get", "/v1/apps/{appId}", appId="app_ffffffffffffffff")
        before_call(None, case, {})
        after_call(None, case, SimpleNamespace(status_code=200))
        sent.append(case.path_parameters["appId"])
    assert sent == ["app_000000000000000a", "app_ffffffffffffffff", "app_000000000000000b", "app_ffffffffffffffff"]
    other = _hook_case("post", "/v1/sms/send")
    before_call(None, other, {})
    after_call(None, other, SimpleNamespace(status_code=202))
    calls = _count_calls(Path(r6_ids["log"]))
    assert calls["total"] == 5 and calls["with_path_ids"] == 4 and calls["real_ids"] == 2
    assert calls["per_operation"]["GET /v1/apps/{appId}"]["real_answers"] == {"200": 2}


def test_r6_hook_never_lets_a_case_suspend_the_admin_keys_tenant(r6_ids: dict[str, Any]) -> None:
    from stress.r6_hooks import use_real_ids

    assert use_real_ids(_hook_case("put", "/v1/tenants/{tenantId}", tenantId="tenant_0000000000000001")) == "real"
    learned = _hook_case("put", "/v1/tenants/{tenantId}", tenantId="tenant_00000000000000ad")
    assert use_real_ids(learned) == "guarded"
    assert learned.path_parameters["tenantId"] == "tenant_000000000000005e"
    use_real_ids(_hook_case("put", "/v1/tenants/{tenantId}"))  # a real-id turn
    random_id = _hook_case("put", "/v1/tenants/{tenantId}", tenantId="tenant_0000000000000077")
    assert use_real_ids(random_id) == "generated"
    assert random_id.path_parameters["tenantId"] == "tenant_0000000000000077"
    # reading the admin's own tenant is harmless: left as generated
    use_real_ids(_hook_case("get", "/v1/tenants/{tenantId}"))
    read = _hook_case("get", "/v1/tenants/{tenantId}", tenantId="tenant_00000000000000ad")
    assert use_real_ids(read) == "generated"


def test_r5_emulator_shortens_one_extensions_access_tokens() -> None:
    from bench.stack import Stack
    from stress.lifecycle import EXTS, _start_emulator

    def token_lifetime(emu: str, ext: str) -> int:
        with httpx.Client(timeout=10) as http:
            http.post(f"{emu}/_emulator/oauth/next-login", json={"extensionId": ext})
            params = {"response_type": "code", "client_id": "bench-client", "redirect_uri": "http://127.0.0.1:9/cb"}
            r = http.get(f"{emu}/restapi/oauth/authorize", params=params)
            code = parse_qs(urlsplit(r.headers["location"]).query)["code"][0]
            form = {"grant_type": "authorization_code", "code": code, "redirect_uri": params["redirect_uri"]}
            r = http.post(f"{emu}/restapi/oauth/token", data=form, auth=("bench-client", "bench-secret"))
            assert r.status_code == 200, r.text
            return int(r.json()["expires_in"])

    with Stack("r5-emu") as st:
        emu = _start_emulator(st, len(EXTS), EXTS[4], 480).url
        assert token_lifetime(emu, EXTS[4]) == 480
        assert token_lifetime(emu, EXTS[0]) == 3600


def test_r5_reads_the_extension_status_as_shown() -> None:
    from stress.lifecycle import _ext_status

    assert _ext_status({"connected": False}) == "disconnected"
    assert _ext_status({"answer": 500}) == "answer 500"
    assert _ext_status({"connected": True, "extensions": [{"status": "connected"}]}) == "connected"
    assert _ext_status({"connected": True, "extensions": [{"status": "error"}]}) == "error"


def test_r5_counts_outage_calls_per_kind_with_ids_folded() -> None:
    from stress.lifecycle import _by_call

    calls = [
        {
            "method": "GET",
            "path": "/restapi/v1.0/account/~/extension/402118230005/message-store",
            "query": {"direction": "Outbound"},
        },
        {
            "method": "GET",
            "path": "/restapi/v1.0/account/~/extension/402118230004/message-store",
            "query": {"direction": "Outbound"},
        },
        {"method": "GET", "path": "/restapi/v1.0/subscription/0dc86dce-b5d8-4efd-877e-c95f548b1230", "query": {}},
        {"method": "POST", "path": "/restapi/oauth/token"},
    ]
    assert _by_call(calls) == {
        "GET /restapi/v1.0/account/~/extension/{id}/message-store?direction=Outbound": 2,
        "GET /restapi/v1.0/subscription/{id}": 1,
        "POST /restapi/oauth/token": 1,
    }
