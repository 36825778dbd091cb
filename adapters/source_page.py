"""A cited passage as a web page: ``GET /sources/v1/{tenant}/{chunk_id}?sig=…``.

A file from a tenant's knowledge has no web address of its own unless its source has a
``url_base``. So that every citation can still be opened, ``serve`` renders the passage
in its document, highlighted. Links are signed (HMAC-SHA256 over the tenant and the
chunk, with the server's widget key): only a citation Switchboard gave out opens, a
link cannot be edited to reach another tenant's or another chunk, and the tenant is
the one in the signed link, looked up only in that tenant's knowledge.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import logging
from collections.abc import Callable

from aiohttp import web
from markdown_it import MarkdownIt

from core.engine import Engine, SourceView, UnknownTenant

log = logging.getLogger("switchboard.sources")
_MARKDOWN = MarkdownIt("commonmark", {"html": False})
PATH = "/sources/v1/{tenant}/{chunk_id}"


class SourceLinks:
    def __init__(self, key: bytes) -> None:
        self._key = hashlib.sha256(b"switchboard source links\x00" + key).digest()

    def _sign(self, tenant: str, chunk_id: str) -> str:
        return hmac.new(self._key, f"{tenant}\x1f{chunk_id}".encode(),
                        hashlib.sha256).hexdigest()[:32]

    def path(self, tenant: str, chunk_id: str) -> str:
        return f"/sources/v1/{tenant}/{chunk_id}?sig={self._sign(tenant, chunk_id)}"

    def valid(self, tenant: str, chunk_id: str, signature: str) -> bool:
        return hmac.compare_digest(self._sign(tenant, chunk_id).encode(),
                                   signature.encode("utf-8", "replace"))


def render(view: SourceView) -> str:
    where = " > ".join(view.headings)
    if view.page:
        where = f"{where} · page {view.page}" if where else f"page {view.page}"
    parts = []
    for n, text in enumerate(view.chunks):
        body = _MARKDOWN.render(text)  # raw HTML in a document is shown as text
        parts.append(f'<mark id="cited">{body}</mark>' if n == view.cited else body)
    original = (f'<p class="meta">Original: <a href="{html.escape(view.url)}" rel="noopener '
                f'noreferrer nofollow">{html.escape(view.url)}</a></p>' if view.url else "")
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<title>{html.escape(view.title)}</title><style>
body{{font-family:system-ui;max-width:46rem;margin:2rem auto;padding:0 1rem;line-height:1.55}}
.meta{{color:#555;font-size:.9rem}} mark{{display:block;background:#fff3b0;padding:.5rem;
border-radius:6px;margin:1rem 0}} p{{margin:.8rem 0}} code{{background:#f4f4f5;padding:0 .2rem}}
pre{{background:#f4f4f5;padding:.6rem;overflow:auto}}</style></head><body>
<h1>{html.escape(view.title)}</h1><p class="meta">{html.escape(view.source)}
{" · " + html.escape(where) if where else ""}</p>{original}
{"".join(parts)}</body></html>"""


def mount(app: web.Application, engine: Callable[[], Engine],
          links: Callable[[], SourceLinks | None]) -> None:
    async def page(request: web.Request) -> web.Response:
        tenant_id, chunk_id = request.match_info["tenant"], request.match_info["chunk_id"]
        signer = links()
        if signer is None or not signer.valid(tenant_id, chunk_id,
                                              request.query.get("sig", "")):
            raise web.HTTPNotFound(text="no such source")
        try:
            tenant = engine().tenant(tenant_id)
        except UnknownTenant:
            raise web.HTTPNotFound(text="no such source") from None
        view = await engine().source_view(tenant, chunk_id)
        if view is None:
            raise web.HTTPNotFound(text="this source is no longer in the knowledge base")
        return web.Response(text=render(view), content_type="text/html", headers={
            "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
            "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"})

    app.router.add_get(PATH, page)
