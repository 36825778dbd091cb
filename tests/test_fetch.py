"""URL ingestion: SSRF protection, redirects, size, time and type limits."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from core.knowledge.fetch import FetchError, _forbidden, _GuardedResolver, fetch


@pytest.fixture
async def site() -> AsyncIterator[str]:
    responses = {
        "/doc": lambda: web.Response(text="# Hello\n\nA document.",
                                     content_type="text/markdown"),
        "/image": lambda: web.Response(body=b"\x89PNG", content_type="image/png"),
        "/big": lambda: web.Response(text="x" * 3_000_000, content_type="text/plain"),
    }
    redirects = {"/hop": "/doc", "/loop": "/loop"}

    async def handler(request: web.Request) -> web.Response:
        if request.path in redirects:
            raise web.HTTPFound(redirects[request.path])
        if request.path in responses:
            return responses[request.path]()
        raise web.HTTPNotFound()

    app = web.Application()
    app.router.add_get("/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    tcp = web.TCPSite(runner, "127.0.0.1", 0)
    await tcp.start()
    yield f"http://127.0.0.1:{tcp._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
    await runner.cleanup()


@pytest.mark.parametrize("url", [
    "http://127.0.0.1/admin", "http://localhost:8000/", "http://169.254.169.254/latest/",
    "http://10.0.0.7/", "http://192.168.1.1/", "http://[::1]/", "http://0.0.0.0/",
    "file:///etc/passwd", "ftp://example.com/x", "http://[::ffff:127.0.0.1]/",
])
async def test_private_and_odd_urls_are_refused(url: str) -> None:
    with pytest.raises(FetchError, match="refused"):
        await fetch(url)


async def test_hostnames_resolving_to_private_addresses_are_refused() -> None:
    with pytest.raises(FetchError, match="private or local"):
        await _GuardedResolver().resolve("localhost", 80)


async def test_allowed_private_fetch_follows_redirects(site: str) -> None:
    fetched = await fetch(f"{site}/hop", allow_private=True)
    assert fetched.url.endswith("/doc") and fetched.content.startswith(b"# Hello")


async def test_limits_on_redirects_types_and_size(site: str) -> None:
    with pytest.raises(FetchError, match="redirects"):
        await fetch(f"{site}/loop", allow_private=True)
    with pytest.raises(FetchError, match="not a supported document type"):
        await fetch(f"{site}/image", allow_private=True)
    with pytest.raises(FetchError, match="over the 1 MB limit"):
        await fetch(f"{site}/big", allow_private=True, max_bytes=1_000_000)
    with pytest.raises(FetchError, match="HTTP 404"):
        await fetch(f"{site}/missing", allow_private=True)


# One address from every range that must be refused, named for the range it is in.
NOT_PUBLIC = {
    "loopback": "127.0.0.2", "rfc1918-10": "10.1.2.3", "rfc1918-172": "172.16.0.9",
    "rfc1918-192": "192.168.0.1", "this-network": "0.1.2.3", "link-local": "169.254.1.1",
    "cgnat": "100.64.0.1", "cloud-metadata-cgnat": "100.100.100.200",
    "ietf-assignments": "192.0.0.9", "test-net-1": "192.0.2.1", "6to4-relay": "192.88.99.1",
    "benchmarking": "198.18.0.1", "benchmarking-2": "198.19.255.254",
    "test-net-2": "198.51.100.7", "test-net-3": "203.0.113.7", "multicast": "224.0.0.1",
    "reserved": "240.0.0.1", "broadcast": "255.255.255.255",
    "v6-unspecified": "::", "v6-loopback": "::1", "v4-mapped-private": "::ffff:10.0.0.1",
    "v4-compatible": "::10.0.0.1", "nat64": "64:ff9b::a00:1", "nat64-local": "64:ff9b:1::1",
    "discard-only": "100::1", "ietf-protocol": "2001::1", "teredo": "2001:0:4136::1",
    "documentation": "2001:db8::1", "6to4": "2002:a00:1::1", "6to4-any": "2002::1",
    "documentation-2": "3fff::1", "srv6": "5f00::1", "site-local": "fec0::1",
    "unique-local": "fd00:ec2::254", "v6-link-local": "fe80::1%eth0",
    "v6-multicast": "ff02::1",
}


@pytest.mark.parametrize("address", NOT_PUBLIC.values(), ids=NOT_PUBLIC.keys())
def test_every_non_public_range_is_refused(address: str) -> None:
    assert _forbidden(address)


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "93.184.215.14",
                                     "2606:4700:4700::1111", "2a00:1450:4001::1"])
def test_public_addresses_are_allowed(address: str) -> None:
    assert not _forbidden(address)


@pytest.mark.parametrize("url", ["http://100.100.100.200/latest/meta-data",
                                 "http://[2002:7f00:1::1]/", "http://[fec0::1]/",
                                 "http://198.18.0.1/"])
async def test_literal_internal_urls_are_refused(url: str) -> None:
    with pytest.raises(FetchError, match="refused"):
        await fetch(url)
