"""Webhook URL rules and the SSRF guard (api.md §4). DNS is always an injected fake resolver."""

from __future__ import annotations

import pytest

from gravity_sms.domain.apps import WEBHOOK_URL_ERROR, WEBHOOK_URL_PRIVATE, UrlPolicy
from gravity_sms.domain.errors import ValidationFailed
from gravity_sms.domain.urls import UrlRejected, is_internal_address, resolve_public, validate_target_url
from tests.conftest import FakeResolver

RESOLVER = FakeResolver()


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "127.8.9.10",
        "::1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.0.1",
        "169.254.169.254",  # cloud metadata
        "169.254.1.1",
        "fe80::1",
        "fd00:ec2::254",
        "100.100.100.200",  # Alibaba metadata
        "100.64.0.1",  # carrier-grade NAT
        "0.0.0.0",
        "224.0.0.1",
        "ff02::1",
        "240.0.0.1",  # reserved
        "255.255.255.255",
        "192.0.2.1",  # documentation
        "::ffff:10.0.0.1",
        "not-an-ip",
    ],
)
def test_internal_addresses(address: str) -> None:
    assert is_internal_address(address)


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111"])
def test_public_addresses(address: str) -> None:
    assert not is_internal_address(address)


@pytest.mark.parametrize(
    "url",
    [
        None,
        5,
        "",
        "hooks.example.com/path",
        "ftp://hooks.example.com/x",
        "https://",
        "https:///path",
        "https://hooks.example.com:99999/x",
        "https://hooks.example.com/a b",
        "javascript:alert(1)",
        "https://hooks.example.com/" + "a" * 2000,
    ],
)
async def test_format_errors(url: object) -> None:
    with pytest.raises(UrlRejected) as exc:
        await validate_target_url(url, https_only=False, block_private=False, resolver=RESOLVER)
    assert exc.value.reason == "format"


async def test_length_limit_is_2000_inclusive() -> None:
    url = "https://hooks.example.com/" + "a" * (2000 - len("https://hooks.example.com/"))
    assert len(url) == 2000
    assert await validate_target_url(url, https_only=True, block_private=True, resolver=RESOLVER) == url


async def test_https_only_in_production() -> None:
    assert await validate_target_url("http://hooks.example.com/x", https_only=False, block_private=False)
    with pytest.raises(UrlRejected):
        await validate_target_url("http://hooks.example.com/x", https_only=True, block_private=False)


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/x",
        "https://[::1]/x",
        "https://localhost/x",
        "https://api.localhost/x",
        "https://metadata.google.internal/computeMetadata",
        "https://169.254.169.254/latest/meta-data",
        "https://10.0.0.1:8443/x",
        "https://internal.example.com/x",
        "https://rebind.example.com/x",  # one internal answer among public ones is enough
        "https://v6local.example.com/x",
        "https://mapped.example.com/x",
        "https://nxdomain.example.com/x",  # cannot be proven public
    ],
)
async def test_private_targets_refused_when_blocking(url: str) -> None:
    with pytest.raises(UrlRejected) as exc:
        await validate_target_url(url, https_only=True, block_private=True, resolver=RESOLVER)
    assert exc.value.reason == "private"


async def test_private_targets_allowed_when_not_blocking() -> None:
    resolver = FakeResolver({})
    url = "http://127.0.0.1:9000/hook"
    assert await validate_target_url(url, https_only=False, block_private=False, resolver=resolver) == url
    assert resolver.calls == []  # no DNS at all when the guard is off


async def test_every_resolved_address_is_returned_and_checked() -> None:
    resolver = FakeResolver({"dual.example.com": ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"]})
    addresses = await resolve_public("https://dual.example.com:8443/x", resolver)
    assert addresses == ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"]
    assert resolver.calls == [("dual.example.com", 8443)]


async def test_policy_maps_rejections_to_contract_messages() -> None:
    policy = UrlPolicy(https_only=True, block_private=True, resolver=RESOLVER)
    kw = {"format_error": WEBHOOK_URL_ERROR, "private_error": WEBHOOK_URL_PRIVATE}
    assert await policy.check("https://hooks.example.com/in", **kw) == "https://hooks.example.com/in"
    with pytest.raises(ValidationFailed) as exc:
        await policy.check("http://hooks.example.com/in", **kw)
    assert exc.value.message == "Invalid webhookUrl: must be https:// in production, max 2000 chars"
    with pytest.raises(ValidationFailed) as exc:
        await policy.check("https://internal.example.com/in", **kw)
    assert exc.value.message == "Invalid webhookUrl: private or internal addresses are not allowed"
