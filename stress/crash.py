"""R1: `kill -9` of the gateway during sends and inbound events, then a restart.

Sends go to the API (unique texts), inbound SMS are injected at the emulator, which delivers
each to the gateway's webhook. When a third of the sends were accepted the gateway process
group gets SIGKILL; a new process starts on the same port and data one second later while
the load continues. After a drain, the suite counts:
- accepted sends (202) missing from the store: lost;
- texts that RingCentral (the emulator's SMS log) received more than once: duplicates;
- acknowledged inbound events (200, seen by the tap) not stored, or not delivered to the app;
- accepted sends still not sent/delivered/failed after the drain: stuck.
"""

from __future__ import annotations

import time
from typing import Any

from bench.report import Outcome
from bench.stack import Stack, wait_until

from stress.common import (
    EXT1,
    TERMINAL,
    UNTHROTTLED_EMULATOR,
    Injector,
    SCtx,
    Sender,
    acked_event_ids,
    duplicates,
    emulator_sms,
    list_messages,
    receiver_records,
)


def r1_kill9(ctx: SCtx) -> Outcome:
    n = ctx.size(5000, 200)
    out = Outcome(
        "R1",
        f"kill -9 during {n:,} sends + {n:,} inbound events, then restart",
        "0 accepted lost; 0 duplicate SMS; every acknowledged inbound fanned out",
    )
    with Stack("r1") as st:
        st.start_emulator(config=UNTHROTTLED_EMULATOR)
        st.receiver = st.start_reference("receiver")
        tenant = st.create_tenant("Crash", [f"{st.receiver.url}/hook/a0"])
        st.extra_env["GRAVITY_SEND_RATE_PER_NUMBER"] = "1000000"
        node = st.start_gateway()
        st.connect(node, tenant, EXT1)
        port = node.port
        sender = Sender(lambda: f"http://127.0.0.1:{port}", tenant.key, n, "r1").start()
        injector = Injector(st, n, "r1").start()
        wait_until(lambda: len(sender.accepted) >= n // 3, 300, 0.01)
        killed_at = len(sender.accepted)
        node.proc.kill9()
        time.sleep(1.0)
        t_restart = time.monotonic()
        node = st.restart_gateway(node)
        ready_s = time.monotonic() - t_restart
        sender.join()
        injector.join()
        acked = acked_event_ids(st)
        accepted_ids = set(sender.accepted.values())

        def drained() -> bool:
            out_msgs = list_messages(node, tenant, "outbound")
            done = sum(1 for m in out_msgs if m["messageId"] in accepted_ids and m["status"] in TERMINAL)
            fanned = {k for name, k, _ in receiver_records(st) if name == "a0"}
            return done >= len(accepted_ids) and acked <= fanned

        # past the outbound lease (120 s): a message claimed by the killed process is adopted only then
        wait_until(drained, 180 if ctx.quick else 300, 2.0)
        outbound = {m["messageId"]: m for m in list_messages(node, tenant, "outbound")}
        inbound = list_messages(node, tenant, "inbound")
        sms = emulator_sms(st)
        fanned = [k for name, k, _ in receiver_records(st) if name == "a0"]
    stored_rc = {m["rcMessageId"] for m in inbound}
    lost = [i for i in accepted_ids if i not in outbound]
    stuck = [i for i in accepted_ids if i in outbound and outbound[i]["status"] not in TERMINAL]
    dup_sms = duplicates(s["text"] for s in sms if s["text"].startswith("r1 send"))
    not_stored = acked - stored_rc
    not_fanned = acked - set(fanned)
    injected = len(injector.ids)
    backfilled = len(stored_rc & set(injector.ids)) - len(acked & stored_rc)
    statuses = _count(m["status"] for i, m in outbound.items() if i in accepted_ids)
    out.figure = (
        f"sends: {len(accepted_ids):,} accepted, {len(lost)} lost, {dup_sms} duplicate SMS, {len(stuck)} stuck; "
        f"inbound: {len(acked):,} acknowledged of {injected:,} injected, {len(not_stored)} not stored, "
        f"{len(not_fanned)} not fanned out, {duplicates(fanned)} duplicate deliveries"
    )
    out.baseline = f"killed after {killed_at:,} accepted sends; restart to /ready {ready_s:.2f} s"
    out.metrics = {
        "accepted": len(accepted_ids),
        "socket_errors": sender.socket_errors,
        "connect_retries": sender.reconnects,
        "refused": sender.refused,
        "lost": len(lost),
        "stuck": len(stuck),
        "duplicate_sms": dup_sms,
        "statuses": statuses,
        "inbound_injected": injected,
        "inbound_acked": len(acked),
        "inbound_not_stored": len(not_stored),
        "inbound_not_fanned_out": len(not_fanned),
        "inbound_recovered_without_ack": max(backfilled, 0),
        "duplicate_deliveries": duplicates(fanned),
    }
    out.notes.append(
        f"{injected - len(acked)} inbound events were never acknowledged (gateway down); "
        f"{max(backfilled, 0)} of them were stored anyway (backfill or a late ack)"
    )
    if duplicates(fanned):
        out.notes.append(
            f"{duplicates(fanned)} app webhook(s) delivered twice: a delivery in flight at the kill was resumed "
            "after the restart (at-least-once across a crash)"
        )
    ok = not lost and not dup_sms and not not_stored and not not_fanned and not stuck and len(accepted_ids) > 0
    out.verdict = "PASS" if ok and len(acked) > 0 else "MISS"
    return out


def _count(values: Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    for v in values:
        counts[str(v)] = counts.get(str(v), 0) + 1
    return counts
