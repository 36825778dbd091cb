"""URL ingestion: SSRF protection, redirects, size, time and type limits."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from core.knowledge.fetch import FetchError, _GuardedResolver, fetch


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
