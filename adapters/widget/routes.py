"""The widget's HTTP surface: the script, the WebSocket, the SSE fallback, CORS and the
demo page. Each route checks the key, the origin and the identity through
:class:`WidgetAdapter` before anything runs; refusals are JSON with a clear message.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import json
import logging
from typing import Any

from aiohttp import WSMsgType, web
from pydantic import BaseModel, ValidationError

from adapters.widget.protocol import CLIENT_FRAME, Hello, PostedFrame, SessionRequest
from adapters.widget.server import STATIC, WidgetAdapter, WidgetRefused
from core.tenants.models import TenantConfig
from observability.logging import log_context

log = logging.getLogger("switchboard.widget")
HELLO_TIMEOUT_S = 10.0
MAX_FRAME_BYTES = 64 * 1024


def _client_ip(request: web.Request) -> str:
    return request.remote or "unknown"


def _cors(origin: str) -> dict[str, str]:
    """CORS headers for an origin already checked (none for an unchecked one)."""
    return {"Access-Control-Allow-Origin": origin, "Vary": "Origin"} if origin else {}


def _refusal(exc: WidgetRefused, origin: str = "") -> web.Response:
    return web.json_response({"error": exc.code, "message": exc.message}, status=exc.status,
                             headers=_cors(origin))


async def _json_body(request: web.Request, model: type[BaseModel]) -> Any:
    if request.content_length is not None and request.content_length > MAX_FRAME_BYTES:
        raise WidgetRefused(413, "too_large", f"bodies are limited to {MAX_FRAME_BYTES} bytes")
    try:
        return model.model_validate_json(await request.read())
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise WidgetRefused(422, "invalid", f"{where}: {first['msg']}") from None


def mount(app: web.Application, get: Any) -> None:
    """Routes of the widget. ``get()`` returns the WidgetAdapter once services are up."""

    async def script(request: web.Request) -> web.StreamResponse:
        return web.FileResponse(STATIC / "widget.js", headers={
            "Content-Type": "application/javascript; charset=utf-8",
            "Cache-Control": "public, max-age=300", "Access-Control-Allow-Origin": "*"})

    async def socket(request: web.Request) -> web.StreamResponse:
        widget: WidgetAdapter = get()
        try:
            tenant = widget.tenant_for(request.query.get("key", ""))
            widget.check_origin(request, tenant)
        except WidgetRefused as exc:
            return _refusal(exc)
        ws = web.WebSocketResponse(heartbeat=25, max_msg_size=MAX_FRAME_BYTES)
        await ws.prepare(request)
        with log_context(tenant=tenant.id, channel="widget"):
            try:
                await _serve_socket(widget, tenant, ws, _client_ip(request))
            except Exception:
                # After the upgrade no HTTP error can be sent: the visitor gets an error
                # frame and a close code that makes the widget reconnect.
                log.exception("widget connection failed")
                if not ws.closed:
                    with contextlib.suppress(Exception):
                        await ws.send_json({"type": "error", "code": "internal",
                                            "message": "Something went wrong on our side; "
                                                       "reconnecting."})
                        await ws.close(code=1011)
        return ws

    async def session(request: web.Request) -> web.StreamResponse:
        widget: WidgetAdapter = get()
        origin = ""
        try:
            body: SessionRequest = await _json_body(request, SessionRequest)
            tenant = widget.tenant_for(body.key)
            origin = widget.check_origin(request, tenant)
            await widget.admit_hello(tenant, _client_ip(request))
            identity = widget.identify(tenant, body.token, body.user_id, body.user_hmac)
        except WidgetRefused as exc:
            return _refusal(exc, origin)
        return web.json_response(await widget.welcome(tenant, identity, True),
                                 headers=_cors(origin))

    async def post_message(request: web.Request) -> web.StreamResponse:
        widget: WidgetAdapter = get()
        origin = ""
        try:
            body: PostedFrame = await _json_body(request, PostedFrame)
            tenant = widget.tenant_for(body.key)
            origin = widget.check_origin(request, tenant)
            identity = widget.session(tenant, body.token)
        except WidgetRefused as exc:
            return _refusal(exc, origin)
        with log_context(tenant=tenant.id, channel="widget"):
            event = await widget.accept(tenant, identity, body.frame, _client_ip(request))
        return web.json_response(event or {"type": "accepted"},
                                 status=429 if event and event.get("code") == "rate_limited"
                                 else 422 if event else 202, headers=_cors(origin))

    async def events(request: web.Request) -> web.StreamResponse:
        """Server-Sent Events: the fallback's downstream. ``Last-Event-ID`` resumes."""
        widget: WidgetAdapter = get()
        try:
            tenant = widget.tenant_for(request.query.get("key", ""))
            origin = widget.check_origin(request, tenant, required=False)
            identity = widget.session(tenant, request.query.get("token", ""))
            after = int(request.headers.get("Last-Event-ID") or request.query.get("after", "0"))
        except WidgetRefused as exc:
            return _refusal(exc)
        except ValueError:
            return _refusal(WidgetRefused(400, "invalid", "after must be a number"))
        response = web.StreamResponse(headers={
            "Content-Type": "text/event-stream", "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no", **_cors(origin)})
        await response.prepare(request)
        async def keepalive() -> None:
            while True:
                await asyncio.sleep(20)
                await response.write(b": keepalive\n\n")

        pinger = asyncio.create_task(keepalive())
        try:
            async for event in widget.streams.follow(tenant.id, identity.subject, after):
                await response.write(f"id: {event['seq']}\ndata: {json.dumps(event)}\n\n"
                                     .encode())
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            pinger.cancel()
        return response

    async def preflight(request: web.Request) -> web.Response:
        """Allowed only for an origin the tenant named by ``?key=`` allows (the widget
        script sends it); without a key, for an origin some tenant allows."""
        widget: WidgetAdapter = get()
        origin = request.headers.get("Origin", "")
        key = request.query.get("key", "")
        try:
            allowed = widget.origin_allowed(request, origin, key)
        except WidgetRefused as exc:
            return _refusal(exc)
        if not allowed:
            log.warning("CORS preflight from an origin no tenant allows",
                        extra={"channel": "widget", "origin": origin[:200]})
            return web.json_response({"error": "this origin is not allowed"}, status=403,
                                     headers={"Vary": "Origin"})
        return web.Response(status=204, headers={
            "Access-Control-Allow-Origin": origin, "Vary": "Origin",
            "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
            "Access-Control-Allow-Headers": "Content-Type", "Access-Control-Max-Age": "600"})

    app.router.add_get("/widget.js", script)
    app.router.add_get("/widget/v1/ws", socket)
    app.router.add_post("/widget/v1/session", session)
    app.router.add_post("/widget/v1/messages", post_message)
    app.router.add_get("/widget/v1/events", events)
    app.router.add_route("OPTIONS", "/widget/v1/{tail:.*}", preflight)


async def _serve_socket(widget: WidgetAdapter, tenant: TenantConfig,
                        ws: web.WebSocketResponse, ip: str) -> None:
    try:
        first = await asyncio.wait_for(ws.receive(), HELLO_TIMEOUT_S)
        hello = CLIENT_FRAME.validate_json(first.data) if first.type == WSMsgType.TEXT \
            else None
    except (TimeoutError, ValidationError):
        hello = None
    if not isinstance(hello, Hello):
        await ws.send_json({"type": "error", "code": "hello",
                            "message": "the first frame must be a hello"})
        await ws.close(code=4400)
        return
    try:
        await widget.admit_hello(tenant, ip)
        identity = widget.identify(tenant, hello.token, hello.user_id, hello.user_hmac)
    except WidgetRefused as exc:
        await ws.send_json({"type": "error", "code": exc.code, "message": exc.message})
        await ws.close(code=4401)
        return
    welcome = await widget.welcome(tenant, identity, hello.after is None)
    await ws.send_json(welcome)
    after = hello.after if hello.after is not None else int(welcome["seq"])

    async def pump() -> None:
        async for event in widget.streams.follow(tenant.id, identity.subject, after):
            await ws.send_json(event)

    pumping = asyncio.create_task(pump())
    try:
        async for raw in ws:
            if raw.type != WSMsgType.TEXT:
                continue
            try:
                frame = CLIENT_FRAME.validate_json(raw.data)
            except ValidationError as exc:
                await ws.send_json({"type": "error", "code": "invalid",
                                    "message": exc.errors()[0]["msg"]})
                continue
            if isinstance(frame, Hello):
                continue
            reply = await widget.accept(tenant, identity, frame, ip)
            if reply is not None:
                await ws.send_json(reply)
    except ConnectionResetError:
        log.info("widget visitor disconnected", extra={"tenant": tenant.id,
                                                       "channel": "widget"})
    finally:
        pumping.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionResetError):
            await pumping


SNIPPET = '<script src="https://HOST/widget.js" data-key="YOUR_PUBLIC_KEY" async></script>'


DEMO_QUESTIONS = ("What is Switchboard?", "How do rate limits work?",
                  "How do I add documents to the knowledge base?",
                  "Which channels does Switchboard support?")
"""Suggested on the demo page; also in the golden set (benchmarks/golden/answers.toml)."""


def demo_page(public_key: str, origin: str = "") -> str:
    """``GET /``: what Switchboard is, the demo tenant's widget to try with questions
    that work offline, and the tag to embed it elsewhere (with this server's address and
    the demo key filled in). It names no tenants and no paths: anyone can load it."""
    embed = (f'<script src="/widget.js" data-key="{html.escape(public_key)}" async></script>'
             if public_key else "<p><strong>The demo tenant has no widget key.</strong></p>")
    snippet = SNIPPET.replace("https://HOST", origin or "https://HOST").replace(
        "YOUR_PUBLIC_KEY", public_key or "YOUR_PUBLIC_KEY")
    questions = "".join(f"<li>{html.escape(q)}</li>" for q in DEMO_QUESTIONS)
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>Switchboard</title><meta name="viewport" content="width=device-width,initial-scale=1">
<link rel="icon" href="data:,"></head>
<body style="font-family:system-ui;max-width:42rem;margin:3rem auto;padding:0 1rem;
line-height:1.55;color:#1f2937">
<h1>Switchboard is running</h1>
<p>One conversation engine behind Slack, Discord and a chat widget on your website, for
many customers at once. Each of them connects a workspace, a server and a site, loads
documents, and gets an assistant that answers in threads with sources you can open,
runs slash commands, and obeys admin commands typed in the channel.</p>
<h2 style="font-size:1.15rem">Try it</h2>
<p>The chat button in the corner is the demo tenant's widget. It answers from this
project's own documentation, with sources; without a language model configured it
quotes the documents. Questions to try:</p>
<ul>{questions}</ul>
<p>Type <code>/help</code> for its commands.</p>
<h2 style="font-size:1.15rem">Put it on a site</h2>
<pre style="background:#f4f4f5;padding:.75rem;overflow:auto">{html.escape(snippet)}</pre>
<p>The page's origin must be in the tenant's <code>[widget] allowed_origins</code>.
Documentation: <code>docs/</code> in the repository (widget, Slack, Discord,
configuration, operations).</p>
<p><a href="/api/v1/openapi.json">Admin API (OpenAPI)</a> · <a href="/healthz">/healthz</a> ·
<a href="/readyz">/readyz</a></p>
{embed}
</body></html>"""
