"""The webhook client over real sockets: the exchange, keep-alive, and the SSRF check at connect time."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from gravity_sms.delivery.webhook_client import BODY_PREFIX, CheckedResolver, WebhookClient
from gravity_sms.domain.urls import UrlRejected
from tests.conftest import FakeResolver
from tests.inbound_support import Receiver

PRIVATE = "Webhook URL resolves to a private or internal address"


@pytest.fixture
async def ok() -> AsyncIterator[Receiver]:
    r = await Receiver().start()
    yield r
    await r.stop()


def client(resolver: FakeResolver | None = None, *, block_private: bool = False, timeout: float = 2) -> WebhookClient:
    return WebhookClient(
        timeout=timeout,
        block_private=block_private,
        user_agent="GravitySMS-Webhook/test",
        resolver=resolver or FakeResolver(),
    )


async def test_posts_the_body_with_its_headers_and_reuses_the_connection(ok: Receiver) -> None:
    c = client()
    first = await c.post(ok.url, b'{"n":1}', {"webhook-id": "msg_1"})
    second = await c.post(ok.url, b'{"n":2}', {"webhook-id": "msg_2"})
    await c.close()
    assert (first.success, first.status_code, first.error, first.body) == (True, 200, None, "received")
    assert second.success
    assert [r.body for r in ok.received] == [b'{"n":1}', b'{"n":2}']
    got = ok.received[0]
    assert got.method == "POST" and got.path == "/hook"
    assert got.headers["content-type"] == "application/json"
    assert got.headers["user-agent"] == "GravitySMS-Webhook/test"
    assert got.headers["webhook-id"] == "msg_1"
    assert ok.connections == 1  # keep-alive


async def test_an_idle_connection_is_not_reused_past_the_keepalive(ok: Receiver) -> None:
    c = WebhookClient(timeout=2, block_private=False, user_agent="t", resolver=FakeResolver(), keepalive_seconds=0.2)
    assert (await c.post(ok.url, b"{}", {})).success
    assert (await c.post(ok.url, b"{}", {})).success
    assert ok.connections == 1
    await asyncio.sleep(0.6)  # longer than the keep-alive: the client closed it on its side
    assert (await c.post(ok.url, b"{}", {})).success
    await c.close()
    assert ok.connections == 2


async def test_a_name_is_connected_to_the_address_its_resolver_answered(ok: Receiver) -> None:
    resolver = FakeResolver({"hooks.example.test": ["127.0.0.1"]})
    c = client(resolver)
    url = f"http://hooks.example.test:{ok.port}/hook"
    # Two at once need two connections: each new connection resolves again (no DNS cache).
    results = await asyncio.gather(c.post(url, b"{}", {}), c.post(url, b"{}", {}))
    await c.close()
    assert all(r.success for r in results)
    assert ok.received[0].headers["host"] == f"hooks.example.test:{ok.port}"  # the name, not the IP
    assert resolver.calls == [("hooks.example.test", ok.port)] * 2


async def test_private_addresses_are_refused_before_any_connection(ok: Receiver) -> None:
    resolver = FakeResolver({"hooks.example.test": ["127.0.0.1"], "mixed.example.test": ["93.184.216.34", "10.0.0.5"]})
    c = client(resolver, block_private=True)
    by_name = await c.post(f"http://hooks.example.test:{ok.port}/hook", b"{}", {})
    mixed = await c.post(f"http://mixed.example.test:{ok.port}/hook", b"{}", {})
    literal = await c.post(ok.url, b"{}", {})
    unknown = await c.post("http://nowhere.example.test/hook", b"{}", {})
    await c.close()
    assert (by_name.error, mixed.error, literal.error) == (PRIVATE, PRIVATE, PRIVATE)
    assert unknown.error == "Webhook URL host could not be resolved"
    assert all(r.status_code is None and not r.success for r in (by_name, mixed, literal, unknown))
    assert ok.received == [] and ok.connections == 0
    assert ("127.0.0.1", ok.port) not in resolver.calls  # a literal is checked, never looked up


async def test_checked_resolver_answers_only_checked_addresses() -> None:
    fake = FakeResolver({"hooks.example.com": ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"]})
    resolver = CheckedResolver(fake, block_private=True)
    answers = await resolver.resolve("hooks.example.com", 443)
    assert [(a["host"], a["hostname"], a["port"]) for a in answers] == [
        ("93.184.216.34", "hooks.example.com", 443),
        ("2606:2800:220:1:248:1893:25c8:1946", "hooks.example.com", 443),
    ]
    fake.table["hooks.example.com"] = ["10.0.0.5"]  # rebinding: the next connection is refused
    with pytest.raises(UrlRejected):
        await resolver.resolve("hooks.example.com", 443)
    for name in ("localhost", "metadata.google.internal"):
        with pytest.raises(UrlRejected):
            await resolver.resolve(name, 80)


async def test_timeouts_errors_and_large_replies() -> None:
    hang, huge, closing, five = [await Receiver(mode=m).start() for m in ("hang", "huge", "close", "500")]
    try:
        c = client(timeout=0.5)
        timed_out = await c.post(hang.url, b"{}", {})
        big = await c.post(huge.url, b"{}", {})
        dropped = await c.post(closing.url, b"{}", {})
        failed = await c.post(five.url, b"{}", {})
        await c.close()
    finally:
        for r in (hang, huge, closing, five):
            await r.stop()
    assert (timed_out.success, timed_out.status_code, timed_out.error) == (False, None, "Timed out after 0.5s")
    assert timed_out.timed_out and not dropped.timed_out and not failed.timed_out
    assert big.success and len(big.body) == BODY_PREFIX  # 2 KB of a 10 MB reply
    assert not dropped.success and dropped.error is not None and dropped.error.startswith("Connection failed: ")
    assert (failed.success, failed.status_code, failed.error, failed.body) == (False, 500, "HTTP 500", "nope")
