"""The webhook client's per-origin pools: separate per endpoint, bounded, closed on eviction."""

from __future__ import annotations

import httpx

from gravity_sms.delivery.origin_pools import OriginPools
from gravity_sms.delivery.webhook_client import WebhookClient


class RecordingPool(httpx.AsyncBaseTransport):
    """A fake pool: answers 200 and remembers which requests it carried and whether it closed."""

    def __init__(self, made: list[RecordingPool]) -> None:
        self.hosts: list[str] = []
        self.closed = False
        made.append(self)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        assert not self.closed, "request sent on a closed pool"
        self.hosts.append(f"{request.url.host}:{request.url.port}")
        return httpx.Response(200, content=b"ok")

    async def aclose(self) -> None:
        self.closed = True


def client_with(made: list[RecordingPool], max_origins: int = 4) -> WebhookClient:
    return WebhookClient(
        timeout=1,
        block_private=False,
        user_agent="t",
        max_origins=max_origins,
        pool_factory=lambda: RecordingPool(made),
    )


async def test_two_endpoints_get_separate_pools() -> None:
    made: list[RecordingPool] = []
    client = client_with(made)
    for url in ("http://a.test:8001/h", "http://b.test:8002/h", "http://a.test:8001/h", "http://a.test:8001/x"):
        assert (await client.post(url, b"{}", {})).success
    # two apps on one host are two endpoints: each has the whole per-endpoint bound
    assert len(made) == 3
    assert made[0].hosts == ["a.test:8001", "a.test:8001"]
    assert made[1].hosts == ["b.test:8002"]
    assert made[2].hosts == ["a.test:8001"]
    assert not any(p.closed for p in made)
    await client.close()
    assert all(p.closed for p in made)


async def test_least_recently_used_pool_is_closed_when_evicted() -> None:
    made: list[RecordingPool] = []
    client = client_with(made, max_origins=2)
    await client.post("http://a.test/h", b"{}", {})
    await client.post("http://b.test/h", b"{}", {})
    await client.post("http://a.test/h", b"{}", {})  # a is now the most recent
    await client.post("http://c.test/h", b"{}", {})
    pool_a, pool_b, pool_c = made
    assert pool_b.closed and not pool_a.closed and not pool_c.closed
    assert [key[1] for key in client.pools.origins()] == ["a.test", "c.test"]
    # b comes back in a fresh pool; a (least recent now) is closed in turn
    assert (await client.post("http://b.test/h", b"{}", {})).success
    assert len(made) == 4 and pool_a.closed and not made[3].closed
    await client.close()


async def test_a_pool_with_an_open_response_is_not_closed_under_it() -> None:
    made: list[RecordingPool] = []
    pools = OriginPools(lambda: RecordingPool(made), max_origins=1)
    async with httpx.AsyncClient(transport=pools) as http:
        async with http.stream("POST", "http://a.test/h") as held:
            await http.post("http://b.test/h")
            assert not made[0].closed  # a still streams its reply: kept past the LRU size
            await http.post("http://c.test/h")
            assert made[1].closed  # b was idle: closed
            assert held.status_code == 200
        await http.post("http://d.test/h")
        assert made[0].closed and made[2].closed and not made[3].closed
    await pools.aclose()


async def test_pinned_addresses_with_different_names_get_separate_pools() -> None:
    made: list[RecordingPool] = []
    pools = OriginPools(lambda: RecordingPool(made))
    async with httpx.AsyncClient(transport=pools) as http:
        for name in ("one.example.com", "two.example.com"):
            await http.post("https://93.184.216.34/h", headers={"Host": name}, extensions={"sni_hostname": name})
    assert len(made) == 2
    await pools.aclose()
