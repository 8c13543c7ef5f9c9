"""R5: subscription and token disasters, and a RingCentral outage with backfill.

Five tenants, each connected on its own extension, on one gateway in real time:
1. outage: every `/restapi/*` call answers 503 for 10 minutes (quality.md R5), right after the
   tenants connected, so every extension's first scheduler visit fails inside it. Meanwhile:
   - inbound SMS for tenant 4 arrive at RingCentral without being delivered (the webhook path
     is down too): afterwards every one of them must be backfilled, and stored once;
   - tenant 5's access tokens live 8 minutes (the emulator is started with that lifetime for
     its extension; RingCentral's default is an hour, so a 10-minute outage crosses the
     scheduled refresh of about one extension in six): the gateway's refresh falls due 3
     minutes into the outage and the token expires 8 minutes in. The refresh attempts must back
     off, a 503 must never disconnect the extension, and it must recover by itself afterwards.
     Tenant 5 also sends one SMS halfway through the outage: it must end `sent`/`delivered`
     (its retry schedule outlasts the outage) or `failed` with a reason;
   counted: every call the gateway made to RingCentral during the outage (a hot loop shows at
   once), the token calls among them, and tenant 5's `/v1/rc/status` polled every 5 s.
2. after the outage (these need RingCentral up: a blacklisting, a deletion or a rejected refresh
   token is only visible to the gateway through answers RingCentral cannot give while it is
   down), tenant 1's subscription is blacklisted and tenant 2's vanishes, each followed by an
   inbound SMS that RingCentral therefore never delivers: they must be re-created and the SMS
   backfilled;
3. tenant 3's refresh token is revoked and its access token expired, then it sends one SMS:
   `/v1/rc/status` must show it disconnected, with no refresh hot loop (its refused refresh
   calls, answered 400, are counted).
The wait after the outage is bounded (16 min: the scheduler backs off up to 9.6 min after a
10-minute outage, verifies subscriptions every 10 min and backfills every 15 min as a safety
net); each recovery's time is reported.

The short-lived tokens need no change to the emulator: `python -m stress.lifecycle emulator`
runs `bench.emu` with the lifetime of one extension's access tokens shortened.
"""

from __future__ import annotations

import json
import re
import sys
import time
from datetime import UTC, datetime
from typing import Any

import httpx
from bench.emu import seed_for
from bench.procs import free_port
from bench.report import Outcome
from bench.stack import Node, Stack, Tenant

from stress.common import SCtx, duplicates, list_messages

EXTS = [f"40211823{e:04d}" for e in (1, 2, 3, 4, 5)]
NUMBERS = [f"+1555{e:03d}0000" for e in (1, 2, 3, 4, 5)]
SHORT_EXT = EXTS[4]
CONNECTED = (None, "connected", "active")
# a path segment that is an id: digits (extensions, messages) or a UUID (subscriptions)
ID_SEGMENT = re.compile(r"/(?:\d+|[0-9a-fA-F]{8}-[0-9a-fA-F-]{27,})(?=/|$)")


def _stored_texts(node: Any, tenant: Tenant) -> list[str]:
    try:
        return [m["body"] for m in list_messages(node, tenant, "inbound")]
    except httpx.HTTPError:
        return []


def _active_subs(st: Stack, ext: str, exclude: set[str] | None = None) -> int:
    return sum(
        1
        for s in st.emulator_state()["subscriptions"]
        if str(s.get("extensionId")) == ext
        and s.get("status") == "Active"
        and not s.get("expired")
        and s["id"] not in (exclude or set())
    )


def _status(node: Any, tenant: Tenant) -> dict[str, Any]:
    r = httpx.get(f"{node.url}/v1/rc/status", headers=tenant.headers, timeout=30)
    return dict(r.json()) if r.status_code == 200 else {"answer": r.status_code}


def _ext_status(body: dict[str, Any]) -> str:
    """The extension's status as `/v1/rc/status` shows it ("disconnected" when not connected)."""
    if not body.get("connected"):
        return "disconnected" if "answer" not in body else f"answer {body['answer']}"
    exts = body.get("extensions") or [{}]
    return str(exts[0].get("status") or "connected")


def _disconnected(node: Any, tenant: Tenant) -> bool:
    return _ext_status(_status(node, tenant)) not in CONNECTED


def _expires_at(body: dict[str, Any]) -> datetime | None:
    """The access-token expiry `/v1/rc/status` shows (None: not shown)."""
    value = body.get("expiresAt")
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if isinstance(value, str) else None


def _start_emulator(st: Stack, extensions: int, short_ext: str, access_ttl: int) -> Node:
    """Like `Stack.start_emulator`, with `short_ext`'s access tokens living `access_ttl` s."""
    port = free_port()
    seed = st.dir / "seed.json"
    seed.write_text(json.dumps(seed_for(extensions=extensions, numbers_per_extension=2)))
    argv = [sys.executable, "-m", "stress.lifecycle", "emulator", str(port), str(seed), str(st.tap), "{}"]
    argv += [short_ext, str(access_ttl)]
    proc = st.spawn("emulator", argv)
    node = Node(proc, port)
    proc.wait_http(f"{node.url}/_emulator/state")
    st.emulator = node
    return node


def _age(at: str, end: datetime) -> float:
    """Seconds from the emulator's timestamp `at` (its clock is not shifted here) to `end`."""
    return (end - datetime.fromisoformat(at.replace("Z", "+00:00"))).total_seconds()


def _by_call(calls: list[dict[str, Any]]) -> dict[str, int]:
    """Calls counted per kind: method, path with ids folded, and the message-store direction."""
    out: dict[str, int] = {}
    for r in calls:
        key = r["method"] + " " + ID_SEGMENT.sub("/{id}", r["path"])
        direction = (r.get("query") or {}).get("direction")
        if direction:
            key += f"?direction={direction}"
        out[key] = out.get(key, 0) + 1
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def _log_events(st: Stack, event: str) -> dict[str, int]:
    """How often the gateway logged `event`, per extension id (from its log file)."""
    counts: dict[str, int] = {}
    for path in (st.dir / "logs").glob("gateway-*.log"):
        for line in path.read_text(errors="replace").splitlines():
            if f" {event} " not in f" {line} " and f'"event":"{event}"' not in line:
                continue
            match = re.search(r'extension_id["=:]+"?(\d+)', line)
            ext = match.group(1) if match else "?"
            counts[ext] = counts.get(ext, 0) + 1
    return counts


def r5_disasters(ctx: SCtx) -> Outcome:
    outage_s = 40.0 if ctx.quick else 600.0
    wait_s = 60.0 if ctx.quick else 960.0
    # tenant 5's access tokens: full, 8 min (refresh due 3 min into the outage, expiry 8 min in);
    # quick, 5 min 15 s (refresh due during the short outage; no expiry inside it)
    short_ttl = 315 if ctx.quick else 480
    out = Outcome(
        "R5",
        f"RingCentral outage ({outage_s:.0f} s) with an access token "
        + ("refresh due" if ctx.quick else "expiring")
        + " in it, blacklisted and vanished subscriptions, rejected refresh token",
        "re-created automatically; missed inbound backfilled; disconnected shown; never a hot loop",
    )
    with Stack("r5") as st:
        emu = _start_emulator(st, len(EXTS), SHORT_EXT, short_ttl).url
        tenants = [st.create_tenant(f"Life{i}") for i in range(len(EXTS))]
        node = st.start_gateway()
        for tenant, ext in zip(tenants, EXTS, strict=True):
            st.connect(node, tenant, ext)
        subs = {str(s["extensionId"]): s["id"] for s in st.emulator_state()["subscriptions"]}
        short_expiry = _expires_at(_status(node, tenants[4]))
        short_left = None if short_expiry is None else (short_expiry - datetime.now(UTC)).total_seconds()
        http = httpx.Client(timeout=30)
        # 1. outage
        http.delete(f"{emu}/_emulator/requests")
        http.post(f"{emu}/_emulator/faults", json={"serverError": {"path": "/restapi/*", "probability": 1.0}})
        t0 = time.monotonic()
        missed4: list[str] = []
        seen5: dict[str, int] = {}  # tenant 5's extension status -> polls that showed it
        outage_send: str | None = None
        while time.monotonic() - t0 < outage_s:
            text = f"missed during outage {len(missed4)}"
            http.post(
                f"{emu}/_emulator/inbound?deliver=false", json={"from": "+15551230000", "to": NUMBERS[3], "text": text}
            )
            missed4.append(text)
            state = _ext_status(_status(node, tenants[4]))
            seen5[state] = seen5.get(state, 0) + 1
            if outage_send is None and time.monotonic() - t0 >= outage_s / 2:
                r = http.post(
                    f"{node.url}/v1/sms/send",
                    headers=tenants[4].headers,
                    json={"to": "+15558880005", "from": NUMBERS[4], "body": "sent during the outage"},
                )
                outage_send = r.json().get("messageId") if r.status_code == 202 else f"answer {r.status_code}"
            time.sleep(5.0)
        outage_calls = http.get(f"{emu}/_emulator/requests").json()["requests"]
        http.delete(f"{emu}/_emulator/faults")
        outage_end = datetime.now(UTC)
        outage_len = time.monotonic() - t0
        calls_per_s = len(outage_calls) / outage_len
        outage_token_calls = sum(1 for r in outage_calls if r["path"] == "/restapi/oauth/token")
        outage_answers: dict[str, int] = {}
        for r in outage_calls:
            outage_answers[str(r["status"])] = outage_answers.get(str(r["status"]), 0) + 1
        # by the end of the outage every caller must be deep in its backoff: a caller retrying
        # at a fixed pace shows in the last stretch even when the whole-outage average is low
        tail_s = min(120.0, outage_len / 3)
        tail_calls = [r for r in outage_calls if _age(r["at"], outage_end) <= tail_s]
        tail_per_s = len(tail_calls) / tail_s
        outage_by_call = _by_call(outage_calls)
        tail_by_call = _by_call(tail_calls)
        backoffs_in_outage = _log_events(st, "scheduler.backoff")
        # 2. subscription disasters, each followed by an inbound SMS RingCentral cannot deliver
        http.post(f"{emu}/_emulator/subscriptions/{subs[EXTS[0]]}/blacklist", json={})
        http.delete(f"{emu}/_emulator/subscriptions/{subs[EXTS[1]]}")
        for number, tag in ((NUMBERS[0], "after blacklist"), (NUMBERS[1], "after vanish")):
            http.post(f"{emu}/_emulator/inbound", json={"from": "+15551230000", "to": number, "text": tag})
        # 3. refresh token rejected
        http.delete(f"{emu}/_emulator/requests")
        http.post(f"{emu}/_emulator/tokens/revoke-refresh", json={"extensionId": EXTS[2]})
        http.post(f"{emu}/_emulator/tokens/expire", json={"extensionId": EXTS[2]})
        http.post(
            f"{node.url}/v1/sms/send",
            headers=tenants[2].headers,
            json={"to": "+15558880000", "from": NUMBERS[2], "body": "after revoke"},
        )
        t1 = time.monotonic()
        stored4: list[str] = []

        def outage_backfilled() -> bool:
            stored4[:] = _stored_texts(node, tenants[3])
            return set(missed4) <= set(stored4)

        def short_token_recovered() -> bool:
            # connected, no error shown, and a new token (its expiry later than the first one's)
            body = _status(node, tenants[4])
            expiry = _expires_at(body)
            ext = (body.get("extensions") or [{}])[0]
            return (
                _ext_status(body) in CONNECTED
                and not ext.get("error")
                and expiry is not None
                and short_expiry is not None
                and expiry > short_expiry
            )

        def outage_send_done() -> bool:
            if outage_send is None or outage_send.startswith("answer"):
                return False
            r = httpx.get(f"{node.url}/v1/sms/status/{outage_send}", headers=tenants[4].headers, timeout=30)
            body = r.json() if r.status_code == 200 else {}
            return body.get("status") in ("sent", "delivered") or (body.get("status") == "failed" and body.get("error"))

        checks = {
            "blacklisted re-created": lambda: _active_subs(st, EXTS[0], {subs[EXTS[0]]}) > 0,
            "vanished re-created": lambda: _active_subs(st, EXTS[1], {subs[EXTS[1]]}) > 0,
            "blacklist SMS backfilled": lambda: "after blacklist" in _stored_texts(node, tenants[0]),
            "vanish SMS backfilled": lambda: "after vanish" in _stored_texts(node, tenants[1]),
            "outage SMS backfilled": outage_backfilled,
            "refresh rejection shown": lambda: _disconnected(node, tenants[2]),
            "expired token refreshed": short_token_recovered,
            "outage send terminal": outage_send_done,
        }
        recovered: dict[str, float | None] = dict.fromkeys(checks, None)
        while time.monotonic() - t1 < wait_s and any(v is None for v in recovered.values()):
            for name, check in checks.items():
                if recovered[name] is None and check():
                    recovered[name] = round(time.monotonic() - t1, 1)
            state = _ext_status(_status(node, tenants[4]))
            seen5[state] = seen5.get(state, 0) + 1
            time.sleep(5.0)
        window = time.monotonic() - t1
        token_calls = [
            r for r in http.get(f"{emu}/_emulator/requests").json()["requests"] if r["path"] == "/restapi/oauth/token"
        ]
        refused = [r for r in token_calls if r["status"] == 400]
        one_sub_each = {ext: _active_subs(st, ext) for ext in (EXTS[0], EXTS[1], EXTS[3], EXTS[4])}
        final5 = _status(node, tenants[4])
        send5 = {}
        if outage_send and not outage_send.startswith("answer"):
            r = http.get(f"{node.url}/v1/sms/status/{outage_send}", headers=tenants[4].headers)
            send5 = {k: v for k, v in r.json().items() if k in ("status", "error")} if r.status_code == 200 else {}
        disconnect_logs = _log_events(st, "rc.disconnected")
        http.close()
    backfilled = len(set(missed4) & set(stored4))
    refused_per_min = len(refused) / window * 60
    done = {k: v for k, v in recovered.items() if v is not None}
    short_never_disconnected = set(seen5) <= set(map(str, CONNECTED))
    out.figure = (
        f"{len(done)}/{len(recovered)} recovered: "
        + ", ".join(
            f"{k} {'in ' + str(v) + ' s' if v is not None else 'NOT within ' + str(int(wait_s)) + ' s'}"
            for k, v in recovered.items()
        )
        + f"; outage {outage_len:.0f} s: {len(outage_calls)} calls to RingCentral ({calls_per_s:.3f}/s; "
        f"{len(tail_calls)} in its last {tail_s:.0f} s), {outage_token_calls} of them refresh attempts; {backfilled}/{len(missed4)} outage SMS backfilled, "
        f"{duplicates(stored4)} stored twice; tenant 5 shown {dict(sorted(seen5.items()))} over "
        f"{sum(seen5.values())} polls; {len(refused)} refused refresh calls in {window:.0f} s after the revoke"
    )
    out.baseline = (
        f"5 connected extensions, tenant 5's access tokens living {short_ttl} s; scheduler pass every 30 s, "
        "backoff 30 s doubling, subscription check every 10 min, backfill every 15 min"
    )
    out.metrics = {
        "outage_s": round(outage_len, 1),
        "recovered_after_s": recovered,
        "outage_calls": len(outage_calls),
        "outage_calls_per_s": round(calls_per_s, 4),
        "outage_answers": outage_answers,
        "outage_calls_by_kind": outage_by_call,
        "outage_tail_s": round(tail_s, 1),
        "outage_tail_calls": len(tail_calls),
        "outage_tail_calls_by_kind": tail_by_call,
        "outage_refresh_attempts": outage_token_calls,
        "scheduler_backoffs_in_outage": backoffs_in_outage,
        "short_token_left_at_connect_s": None if short_left is None else round(short_left, 1),
        "short_token_status_seen": seen5,
        "short_token_final_status": final5,
        "outage_send": send5,
        "missed_during_outage": len(missed4),
        "outage_backfilled": backfilled,
        "outage_stored_twice": duplicates(stored4),
        "active_subscriptions_at_end": one_sub_each,
        "token_calls_after_revoke": len(token_calls),
        "refused_refresh_calls_after_revoke": len(refused),
        "refused_refresh_per_min": round(refused_per_min, 2),
        "disconnected_log_lines": disconnect_logs,
    }
    # the tail limit holds in full runs only: a quick outage ends before the backoffs grow
    tail_ok = ctx.quick or tail_per_s <= 0.1
    no_hot_loop = calls_per_s <= 1.0 and refused_per_min <= 2.0 and tail_ok
    if calls_per_s > 1.0:
        out.notes.append(f"hot loop: {calls_per_s:.2f} calls/s during the outage (limit 1): {outage_by_call}")
    if not tail_ok:
        out.notes.append(
            f"hot loop: {len(tail_calls)} calls in the outage's last {tail_s:.0f} s ({tail_per_s:.2f}/s, "
            f"limit 0.1/s): {tail_by_call}"
        )
    if refused_per_min > 2.0:
        out.notes.append(f"hot loop: {refused_per_min:.1f} refused refresh calls/min after the revoke (limit 2)")
    if short_left is None or not 0 < short_left <= short_ttl + 5:
        out.notes.append(
            f"tenant 5's token was not short-lived (expires in {short_left} s): emulator patch not applied"
        )
    if outage_token_calls == 0:
        out.notes.append("no refresh attempt fell inside the outage: the refresh-backoff path was not exercised")
    if not short_never_disconnected:
        out.notes.append(f"tenant 5 was shown {sorted(seen5)}: a 503 on the refresh must not disconnect")
    if any(n != 1 for n in one_sub_each.values()):
        out.notes.append(f"active subscriptions per extension at the end (want 1 each): {one_sub_each}")
    if ctx.quick:
        out.notes.append(
            "quick run: the wait is far shorter than the scheduler's periods, so recoveries may be missing"
        )
    ok = (
        no_hot_loop
        and len(done) == len(recovered)
        and short_never_disconnected
        and short_left is not None
        and 0 < short_left <= short_ttl + 5
        and outage_token_calls > 0
        and duplicates(stored4) == 0
        and all(n == 1 for n in one_sub_each.values())
    )
    out.verdict = "PASS" if ok else "MISS"
    return out


def _emulator_main(argv: list[str]) -> None:
    """`python -m stress.lifecycle emulator PORT SEED TAP CONFIG EXTENSION_ID ACCESS_TTL`:
    `bench.emu` whose access tokens for EXTENSION_ID live ACCESS_TTL seconds (the others keep
    RingCentral's default of an hour)."""
    from bench import emu
    from gravity_sms.emulator import sessions

    ext, ttl = argv[4], int(argv[5])
    rotate = sessions._rotate

    def short_rotate(state: Any, session: Any, access_ttl: int, refresh_ttl: int) -> dict[str, Any]:
        return rotate(state, session, ttl if str(session.extension_id) == ext else access_ttl, refresh_ttl)

    sessions._rotate = short_rotate  # type: ignore[assignment]
    emu.main(argv[:4])


if __name__ == "__main__" and sys.argv[1:2] == ["emulator"]:
    _emulator_main(sys.argv[2:])
