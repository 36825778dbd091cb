"""Fetching documents from URLs safely: size, time and type limits, and SSRF protection.

Every hop (the first request and each redirect) is checked: only http(s), and the host
must resolve to a globally routable unicast address (``ip.is_global`` and not one of the
ranges it misses, listed in ``_NOT_PUBLIC``) unless the tenant allows private addresses.
The check happens in the connector's resolver, so the address that is checked is the
address that is connected to (no DNS rebinding).
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

ALLOWED_TYPES = ("text/html", "application/xhtml+xml", "text/plain", "text/markdown",
                 "text/x-markdown", "application/pdf",
                 "application/vnd.openxmlformats-officedocument.wordprocessingml.document")
MAX_REDIRECTS = 5


class FetchError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Fetched:
    url: str
    content: bytes
    content_type: str


# Ranges that ``is_global`` lets through (or that Python versions disagree on) but that
# no public document server lives in: shared address space for carrier NAT (cloud
# metadata services such as 100.100.100.200 sit there), benchmarking, IETF protocol
# assignments, the 6to4 relay, and IPv6 prefixes that embed or tunnel to an IPv4 address
# (6to4, NAT64, IPv4-compatible) or were never globally routable (site-local, SRv6,
# the new documentation prefix).
_NOT_PUBLIC = tuple(ipaddress.ip_network(n) for n in (
    "0.0.0.0/8", "100.64.0.0/10", "192.0.0.0/24", "192.88.99.0/24", "198.18.0.0/15",
    "::/96", "64:ff9b::/96", "64:ff9b:1::/48", "2001::/23", "2001:db8::/32",
    "2002::/16", "3fff::/20", "5f00::/16", "fec0::/10",
))


def _forbidden(address: str) -> bool:
    """Everything that is not a globally routable unicast address is refused."""
    ip = ipaddress.ip_address(address.split("%")[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    if not ip.is_global or ip.is_multicast or ip.is_reserved or ip.is_unspecified:
        return True
    return any(ip.version == net.version and ip in net for net in _NOT_PUBLIC)


class _GuardedResolver(AbstractResolver):
    def __init__(self) -> None:
        self._inner = DefaultResolver()

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        for result in results:
            if _forbidden(result["host"]):
                raise FetchError(f"refused: {host} resolves to a private or local address "
                                 f"({result['host']})")
        return results

    async def close(self) -> None:
        await self._inner.close()


def check_url(url: str, allow_private: bool) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise FetchError(f"refused: only http and https URLs can be ingested ({url!r})")
    if allow_private:
        return
    try:
        literal = ipaddress.ip_address(parts.hostname.strip("[]"))
    except ValueError:
        if parts.hostname.lower() in ("localhost", "localhost.localdomain") or \
                parts.hostname.lower().endswith(".localhost"):
            raise FetchError(f"refused: {parts.hostname} is a local address") from None
        return
    if _forbidden(str(literal)):
        raise FetchError(f"refused: {literal} is a private or local address")


async def fetch(url: str, *, allow_private: bool = False, max_bytes: int = 20 * 1024 * 1024,
                timeout_s: float = 20.0) -> Fetched:
    """GET a document, following at most five redirects, each checked again."""
    connector_args: dict[str, Any] = {"limit": 4}
    if not allow_private:
        connector_args["resolver"] = _GuardedResolver()
    timeout = aiohttp.ClientTimeout(total=timeout_s, sock_connect=min(timeout_s, 10))
    headers = {"User-Agent": "Switchboard-Ingest/0.1", "Accept": ", ".join(ALLOWED_TYPES)}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(**connector_args),
                                     timeout=timeout, headers=headers) as session:
        for _ in range(MAX_REDIRECTS + 1):
            check_url(url, allow_private)
            try:
                async with session.get(url, allow_redirects=False) as response:
                    if response.status in (301, 302, 303, 307, 308):
                        url = urljoin(url, response.headers.get("Location", ""))
                        continue
                    if response.status != 200:
                        raise FetchError(f"{url} answered HTTP {response.status}")
                    ctype = response.headers.get("Content-Type", "").split(";")[0].strip()
                    if ctype and ctype.lower() not in ALLOWED_TYPES:
                        raise FetchError(f"{url} is {ctype}, not a supported document type")
                    declared = response.content_length
                    if declared is not None and declared > max_bytes:
                        raise FetchError(f"{url} is {declared / 1e6:.1f} MB, over the "
                                         f"{max_bytes / 1e6:.0f} MB limit")
                    body = bytearray()
                    async for block in response.content.iter_chunked(65536):
                        body += block
                        if len(body) > max_bytes:
                            raise FetchError(f"{url} is over the {max_bytes / 1e6:.0f} MB "
                                             "limit")
                    return Fetched(str(response.url), bytes(body), ctype)
            except FetchError:
                raise
            except TimeoutError:
                raise FetchError(f"{url} did not answer within {timeout_s:.0f}s") from None
            except aiohttp.ClientError as exc:
                cause = exc.__cause__ if isinstance(exc.__cause__, FetchError) else None
                if cause is not None:
                    raise cause from None
                raise FetchError(f"could not fetch {url}: {exc}") from None
        raise FetchError(f"{url}: more than {MAX_REDIRECTS} redirects")
