"""Webhook and callback URL rules (api.md §4 "Webhook URL rules") and the SSRF guard.

The same guard runs when a URL is set and again on the resolved address at delivery time, so a
DNS name that later resolves to an internal address (DNS rebinding) is still refused.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

MAX_URL_LENGTH = 2000

Resolver = Callable[[str, int], Awaitable[list[str]]]

# Cloud metadata endpoints that are not covered by the private/link-local ranges.
_METADATA_HOSTS = {"metadata.google.internal", "metadata", "metadata.azure.internal", "instance-data"}
_METADATA_ADDRS = {
    ipaddress.ip_address("169.254.169.254"),
    ipaddress.ip_address("fd00:ec2::254"),
    ipaddress.ip_address("100.100.100.200"),
}


class UrlRejected(Exception):
    """`reason` is `format` (shape, scheme or length) or `private` (internal address)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


async def system_resolver(host: str, port: int) -> list[str]:
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def is_internal_address(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return True
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return (
        ip in _METADATA_ADDRS
        or ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or not ip.is_global
    )


def check_url_format(url: object, *, https_only: bool) -> str:
    """Shape rules only (no DNS). Returns the URL or raises UrlRejected('format')."""
    if not isinstance(url, str) or not url or len(url) > MAX_URL_LENGTH:
        raise UrlRejected("format")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UrlRejected("format") from exc
    del port
    allowed = ("https",) if https_only else ("http", "https")
    if parts.scheme not in allowed or not parts.hostname:
        raise UrlRejected("format")
    if any(ch.isspace() for ch in url):
        raise UrlRejected("format")
    return url


async def resolve_public(url: str, resolver: Resolver = system_resolver) -> list[str]:
    """Resolve the URL's host and refuse it if any address is internal (UrlRejected('private')).

    Returns the resolved addresses, so a caller can connect to exactly what was checked.
    """
    parts = urlsplit(url)
    host = (parts.hostname or "").rstrip(".").lower()
    if host in _METADATA_HOSTS or host == "localhost" or host.endswith(".localhost"):
        raise UrlRejected("private")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        addresses = [str(ipaddress.ip_address(host))]
    except ValueError:
        try:
            addresses = await resolver(host, port)
        except OSError as exc:
            raise UrlRejected("unresolvable") from exc
    if not addresses or any(is_internal_address(a) for a in addresses):
        raise UrlRejected("private")
    return addresses


async def validate_target_url(
    url: object, *, https_only: bool, block_private: bool, resolver: Resolver = system_resolver
) -> str:
    """Everything checked when a webhook or callback URL is set."""
    checked = check_url_format(url, https_only=https_only)
    if block_private:
        try:
            await resolve_public(checked, resolver)
        except UrlRejected as exc:
            # A name that does not resolve now is accepted at set time only when private
            # blocking is off; with it on, an unresolvable host cannot be proven public.
            raise UrlRejected("private") from exc
    return checked
