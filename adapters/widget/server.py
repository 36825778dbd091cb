"""The widget's server side: the script, the demo page and the ``/widget/v1/`` transport.

A browser says hello with its widget key; the key names the tenant, the page's
``Origin`` must be one the tenant allows, and the visitor is either anonymous (a signed
token the browser keeps) or a user the site vouches for with an HMAC. Messages then run
through the same engine as every channel, in a task of their own, and their events go to
the conversation's stream (see ``streams.py``), which every open tab follows. The
WebSocket is the main transport; Server-Sent Events plus POST are the fallback for
networks that block WebSockets.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import json
import logging
import os
from collections import OrderedDict
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from aiohttp import WSMsgType, web
from pydantic import BaseModel, ValidationError

from adapters.widget.identity import Identity, IdentityError, TokenSigner, verify_user
from adapters.widget.protocol import (
    CLIENT_FRAME,
    Hello,
    Ping,
    PostedFrame,
    SendFeedback,
    SendMessage,
    SessionRequest,
)
from adapters.widget.streams import ConversationStream, Event, Streams
from core.engine import Engine
from core.messages import Author, Binding, InboundMessage
from core.observability.logging import log_context
from core.replies import Reply
from core.sessions.models import ConversationKey
from core.state.base import Bucket
from core.tenants.models import TenantConfig
from core.tenants.registry import UnknownTenant

log = logging.getLogger("switchboard.widget")
STATIC = Path(__file__).resolve().parent / "static"
HISTORY_LIMIT = 50
HELLO_TIMEOUT_S = 10.0
MAX_FRAME_BYTES = 64 * 1024
SEEN_CLIENT_IDS = 200


class WidgetRefused(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    default = {"http": 80, "https": 443}.get(parts.scheme)
    port = f":{parts.port}" if parts.port and parts.port != default else ""
    return f"{parts.scheme}://{(parts.hostname or '').lower()}{port}"


class StreamSink:
    """Delivers one turn's deltas and reply into the conversation stream."""

    def __init__(self, stream: ConversationStream, client_id: str) -> None:
        self._stream = stream
        self._client_id = client_id

    async def delta(self, text: str) -> None:
        self._stream.publish({"type": "delta", "client_id": self._client_id, "text": text})

    async def finish(self, reply: Reply) -> None:
        self._stream.publish({
            "type": "reply", "client_id": self._client_id, "turn_id": reply.turn_id,
            "kind": reply.kind, "text": reply.text, "ephemeral": reply.ephemeral,
            "retry_after_s": reply.retry_after_s,
            "citations": [{"number": c.number, "title": c.title, "url": c.url,
                           "source": c.source, "snippet": c.snippet} for c in reply.citations],
            "follow_ups": list(reply.follow_ups)})


class WidgetAdapter:
    def __init__(self, engine: Engine, signer: TokenSigner) -> None:
        self._engine = engine
        self._signer = signer
        self.streams = Streams()
        self._seen: dict[tuple[str, str], OrderedDict[str, None]] = {}
        self._inflight: dict[tuple[str, str], int] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    # -- who and where -----------------------------------------------------------------

    def tenant_for(self, key: str) -> TenantConfig:
        try:
            return self._engine.deps.tenants.resolve(Binding("widget", key))
        except UnknownTenant:
            log.warning("widget request with an unknown key", extra={"channel": "widget"})
            raise WidgetRefused(404, "unknown_key", "unknown widget key") from None

    def check_origin(self, request: web.Request, tenant: TenantConfig,
                     required: bool = True) -> str:
        origin = request.headers.get("Origin", "")
        if not origin:
            if required:
                raise WidgetRefused(403, "origin", "the Origin header is required")
            return ""
        allowed = {origin_of(str(o)) for o in tenant.widget.allowed_origins}
        if tenant.widget.allow_own_origin:
            allowed.add(origin_of(f"{request.scheme}://{request.host}"))
        if origin_of(origin) not in allowed:
            log.warning("widget request from an origin the tenant does not allow",
                        extra={"tenant": tenant.id, "channel": "widget", "origin": origin})
            raise WidgetRefused(403, "origin", "this site is not allowed to use this widget")
        return origin

    def identify(self, tenant: TenantConfig, token: str, user_id: str,
                 user_hmac: str) -> Identity:
        if user_id or user_hmac:
            secret = os.environ.get(tenant.widget.secret_env, "") \
                if tenant.widget.secret_env else ""
            try:
                return verify_user(secret, tenant.id, user_id, user_hmac)
            except IdentityError as exc:
                log.warning("widget identity refused: %s", exc,
                            extra={"tenant": tenant.id, "channel": "widget"})
                raise WidgetRefused(401, "identity", str(exc)) from None
        if token:
            try:
                identity = self._signer.verify(token, tenant.id)
            except IdentityError as exc:
                raise WidgetRefused(401, "token", str(exc)) from None
            if identity.identified:  # identified sessions are re-proven on every load
                raise WidgetRefused(401, "token", "sign in again")
            return identity
        return self._signer.anonymous(tenant.id)

    async def welcome(self, tenant: TenantConfig, identity: Identity,
                      with_history: bool) -> Event:
        stream = self.streams.get(tenant.id, identity.subject)
        seq = stream.resume_point()
        history: list[dict[str, Any]] = []
        if with_history:
            key = ConversationKey(tenant.id, "widget", identity.subject)
            messages = await self._engine.deps.sessions.transcript(key, HISTORY_LIMIT)
            # Both messages of a turn carry the client id of its question, so a browser
            # that also gets the turn's live events shows it once.
            asked = {m.turn_id: m.platform_message_id.removeprefix("widget:")
                     for m in messages if m.role == "user"}
            for m in messages:
                history.append({"role": m.role, "text": m.text, "turn_id": m.turn_id,
                                "client_id": asked.get(m.turn_id, ""),
                                "citations": list(m.citations)})
        return {"type": "welcome", "token": self._signer.issue(identity),
                "identified": identity.identified, "seq": seq, "history": history,
                "config": widget_config(tenant)}

    # -- what visitors send ------------------------------------------------------------

    async def accept(self, tenant: TenantConfig, identity: Identity,
                     frame: SendMessage | SendFeedback | Ping, ip: str) -> Event | None:
        """Run one frame; returns an event for this connection only (errors), if any."""
        if isinstance(frame, Ping):
            return {"type": "pong"}
        stream = self.streams.get(tenant.id, identity.subject)
        message = InboundMessage(
            binding=Binding("widget", tenant.widget.public_key), thread=identity.subject,
            author=Author(identity.user_id if identity.identified else identity.subject),
            text="", platform_message_id="")
        if isinstance(frame, SendFeedback):
            stored = await self._engine.record_feedback(message, frame.turn_id, frame.rating)
            stream.publish({"type": "feedback", "turn_id": frame.turn_id,
                            "rating": frame.rating, "stored": stored})
            return None
        if len(frame.text) > tenant.widget.max_message_chars:
            return {"type": "error", "code": "too_long", "client_id": frame.client_id,
                    "message": f"Messages are limited to {tenant.widget.max_message_chars} "
                               "characters."}
        seen = self._seen.setdefault((tenant.id, identity.subject), OrderedDict())
        if frame.client_id in seen:
            return None  # a resend after a reconnect: already accepted once
        decision = await self._engine.deps.state.take(
            [Bucket(f"{tenant.id}:widget-ip:{ip}", tenant.widget.ip_per_minute, "ip")])
        if not decision.allowed:
            return {"type": "error", "code": "rate_limited", "client_id": frame.client_id,
                    "retry_after_s": round(decision.retry_after_s, 1),
                    "message": "You're sending messages too quickly; try again in "
                               f"{max(1, round(decision.retry_after_s))} s."}
        seen[frame.client_id] = None
        while len(seen) > SEEN_CLIENT_IDS:
            seen.popitem(last=False)
        inbound = InboundMessage(
            binding=message.binding, thread=message.thread, author=message.author,
            text=frame.text.strip(), platform_message_id=f"widget:{frame.client_id}")
        key = (tenant.id, identity.subject)
        if self._inflight.get(key, 0) == 0:
            stream.inflight_from = stream.seq
        self._inflight[key] = self._inflight.get(key, 0) + 1
        stream.publish({"type": "message", "role": "user", "text": inbound.text,
                        "client_id": frame.client_id})
        stream.publish({"type": "typing", "client_id": frame.client_id})
        task = asyncio.create_task(self._run(inbound, stream, frame.client_id, key))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return None

    async def _run(self, message: InboundMessage, stream: ConversationStream,
                   client_id: str, key: tuple[str, str]) -> None:
        """The turn runs apart from any connection: a dropped socket does not stop it."""
        try:
            await self._engine.handle(message, StreamSink(stream, client_id))
        except Exception:
            log.exception("widget turn failed", extra={"tenant": key[0], "channel": "widget"})
            stream.publish({"type": "reply", "client_id": client_id, "turn_id": "",
                            "kind": "apology", "text": "Sorry, something went wrong on our "
                            "side. Please try again.", "citations": [], "follow_ups": []})
        finally:
            self._inflight[key] -= 1
            if self._inflight[key] == 0:
                del self._inflight[key]
                stream.inflight_from = None

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def widget_config(tenant: TenantConfig) -> dict[str, Any]:
    w = tenant.widget
    return {"title": w.title, "accent_color": w.accent_color, "position": w.position,
            "greeting": tenant.persona.greeting,
            "avatar_url": str(w.avatar_url) if w.avatar_url else "",
            "max_message_chars": w.max_message_chars}


def _client_ip(request: web.Request) -> str:
    return request.remote or "unknown"


def _refusal(exc: WidgetRefused, origin: str = "") -> web.Response:
    headers = {"Access-Control-Allow-Origin": origin, "Vary": "Origin"} if origin else {}
    return web.json_response({"error": exc.code, "message": exc.message}, status=exc.status,
                             headers=headers)


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
            await _serve_socket(widget, tenant, ws, _client_ip(request))
        return ws

    async def session(request: web.Request) -> web.StreamResponse:
        widget: WidgetAdapter = get()
        origin = ""
        try:
            body: SessionRequest = await _json_body(request, SessionRequest)
            tenant = widget.tenant_for(body.key)
            origin = widget.check_origin(request, tenant)
            identity = widget.identify(tenant, body.token, body.user_id, body.user_hmac)
        except WidgetRefused as exc:
            return _refusal(exc, origin)
        return web.json_response(await widget.welcome(tenant, identity, True),
                                 headers={"Access-Control-Allow-Origin": origin,
                                          "Vary": "Origin"})

    async def post_message(request: web.Request) -> web.StreamResponse:
        widget: WidgetAdapter = get()
        origin = ""
        try:
            body: PostedFrame = await _json_body(request, PostedFrame)
            tenant = widget.tenant_for(body.key)
            origin = widget.check_origin(request, tenant)
            identity = widget.identify(tenant, body.token, "", "")
        except WidgetRefused as exc:
            return _refusal(exc, origin)
        with log_context(tenant=tenant.id, channel="widget"):
            event = await widget.accept(tenant, identity, body.frame, _client_ip(request))
        return web.json_response(event or {"type": "accepted"},
                                 status=429 if event and event.get("code") == "rate_limited"
                                 else 422 if event else 202,
                                 headers={"Access-Control-Allow-Origin": origin,
                                          "Vary": "Origin"})

    async def events(request: web.Request) -> web.StreamResponse:
        """Server-Sent Events: the fallback's downstream. ``Last-Event-ID`` resumes."""
        widget: WidgetAdapter = get()
        try:
            tenant = widget.tenant_for(request.query.get("key", ""))
            origin = widget.check_origin(request, tenant, required=False)
            identity = widget.identify(tenant, request.query.get("token", ""), "", "")
            after = int(request.headers.get("Last-Event-ID") or request.query.get("after", "0"))
        except WidgetRefused as exc:
            return _refusal(exc)
        except ValueError:
            return _refusal(WidgetRefused(400, "invalid", "after must be a number"))
        response = web.StreamResponse(headers={
            "Content-Type": "text/event-stream", "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no", **({"Access-Control-Allow-Origin": origin,
                                            "Vary": "Origin"} if origin else {})})
        await response.prepare(request)
        stream = widget.streams.get(tenant.id, identity.subject)

        async def keepalive() -> None:
            while True:
                await asyncio.sleep(20)
                await response.write(b": keepalive\n\n")

        pinger = asyncio.create_task(keepalive())
        try:
            async for event in stream.follow(after):
                await response.write(f"id: {event['seq']}\ndata: {json.dumps(event)}\n\n"
                                     .encode())
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            pinger.cancel()
        return response

    async def preflight(request: web.Request) -> web.Response:
        origin = request.headers.get("Origin", "")
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
        identity = widget.identify(tenant, hello.token, hello.user_id, hello.user_hmac)
    except WidgetRefused as exc:
        await ws.send_json({"type": "error", "code": exc.code, "message": exc.message})
        await ws.close(code=4401)
        return
    welcome = await widget.welcome(tenant, identity, hello.after is None)
    await ws.send_json(welcome)
    stream = widget.streams.get(tenant.id, identity.subject)
    after = hello.after if hello.after is not None else int(welcome["seq"])

    async def pump() -> None:
        async for event in stream.follow(after):
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
    finally:
        pumping.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionResetError):
            await pumping


SNIPPET = '<script src="https://HOST/widget.js" data-key="YOUR_PUBLIC_KEY" async></script>'


def demo_page(public_key: str, tenants: list[str]) -> str:
    """``GET /``: the demo tenant's widget on a page that says what it is."""
    listed = ", ".join(html.escape(t) for t in tenants) or "none"
    embed = (f'<script src="/widget.js" data-key="{html.escape(public_key)}" async></script>'
             if public_key else "<p><strong>The demo tenant has no widget key.</strong></p>")
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>Switchboard</title><meta name="viewport" content="width=device-width,initial-scale=1">
</head><body style="font-family:system-ui;max-width:40rem;margin:3rem auto;padding:0 1rem;
line-height:1.5">
<h1>Switchboard is running</h1>
<p>The chat button in the corner is the web widget of the demo tenant. Ask it about
Switchboard: it answers from the project's own documentation, with sources. Type
<code>/help</code> for its commands.</p>
<p>Tenants loaded: {listed}.</p>
<p>Add the widget to any site with one tag:</p>
<pre style="background:#f4f4f5;padding:.75rem;overflow:auto">{html.escape(SNIPPET)}</pre>
<p><a href="/healthz">/healthz</a> · <a href="/readyz">/readyz</a> ·
<a href="/metrics">/metrics</a> · <a href="/api/v1/openapi.json">admin API</a></p>
{embed}
</body></html>"""
