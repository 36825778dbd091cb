"""The widget's server side: the script, the demo page and the ``/widget/v1/`` transport.

A browser says hello with its widget key; the key names the tenant, the page's
``Origin`` must be one the tenant allows, and the visitor is either anonymous (a signed
token the browser keeps) or a user the site vouches for with an HMAC. Messages then run
through the same engine as every channel, in a task of their own, and their events go to
the conversation's stream (``core/turns/streams.py``: in this process, or in Redis
Streams so that any worker serves any tab), which every open tab follows. The
WebSocket is the main transport; Server-Sent Events plus POST are the fallback for
networks that block WebSockets.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from adapters.source_page import SourceLinks
from adapters.widget.identity import Identity, IdentityError, TokenSigner, verify_user
from adapters.widget.protocol import (
    CitationFrame,
    DeltaFrame,
    Ping,
    ReplyFrame,
    SendConfirm,
    SendFeedback,
    SendMessage,
    ServerFrame,
    ToolFrame,
    TypingFrame,
)
from core.engine import Engine, UnknownTenant
from core.messages import Author, Binding, CommandCall, InboundMessage
from core.replies import CONFIRM_YES, Reply
from core.tenants.models import TenantConfig
from core.turns.events import (
    NOTHING,
    FinalReply,
    Receipt,
    TextDelta,
    ToolCalled,
    ToolReturned,
    TurnEvent,
    TurnFailed,
    TurnStarted,
)
from core.turns.streams import ConversationStreams, Event, MemoryStreams

log = logging.getLogger("switchboard.widget")
STATIC = Path(__file__).resolve().parent / "static"
HISTORY_LIMIT = 50


class WidgetRefused(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def origin_of(url: str) -> str:
    """``scheme://host[:port]`` normalized for comparison; "" for a malformed origin (a
    port out of range, an unclosed IPv6 bracket), which no allow-list contains."""
    try:
        parts = urlsplit(url)
        port_number = parts.port
    except ValueError:
        return ""
    if not parts.scheme or not parts.hostname:
        return ""
    default = {"http": 80, "https": 443}.get(parts.scheme)
    port = f":{port_number}" if port_number and port_number != default else ""
    return f"{parts.scheme}://{parts.hostname.lower()}{port}"


class StreamDelivery:
    """Delivers one turn's events into the conversation stream, as typed frames."""

    def __init__(self, streams: ConversationStreams, client_id: str, tenant: str,
                 subject: str, links: SourceLinks | None = None) -> None:
        self._streams = streams
        self._links = links
        self._client_id = client_id
        self._tenant, self._subject = tenant, subject
        self._labels: dict[str, str] = {}
        self.address: dict[str, object] = {"kind": "widget", "tenant": tenant,
                                           "subject": subject, "client_id": client_id}

    def _page_of(self, url: str, chunk_id: str) -> str:
        if url or not chunk_id or self._links is None:
            return ""
        return self._links.path(self._tenant, chunk_id)

    async def _publish(self, frame: ServerFrame) -> None:
        """A stream that cannot take the event (Redis down) costs the live view only:
        the turn goes on and is stored, and a reconnecting tab reloads the history."""
        try:
            await self._streams.publish(self._tenant, self._subject, frame)
        except Exception as exc:
            log.warning("a widget event could not be published (%s: %s)",
                        type(exc).__name__, exc,
                        extra={"tenant": self._tenant, "channel": "widget"})

    async def deliver(self, event: TurnEvent) -> Receipt:
        """"Typing" once the turn is accepted (a duplicate or a refused message shows
        none), text deltas, a chip per tool call that turns from running to its outcome, then the
        reply with its sources, follow-ups and the tools used."""
        cid = self._client_id
        match event:
            case TurnStarted(turn_id=turn_id):
                await self._publish(TypingFrame(type="typing", client_id=cid, turn_id=turn_id))
            case TextDelta(text=text):
                await self._publish(DeltaFrame(type="delta", client_id=cid, text=text))
            case ToolCalled(call_id=call_id, tool=tool, label=label):
                self._labels[call_id] = label or tool
                await self._publish(ToolFrame(type="tool", client_id=cid, call_id=call_id,
                                        tool=tool, label=label or tool, status="running",
                                        summary=""))
            case ToolReturned(call_id=call_id, tool=tool, outcome=outcome, summary=summary):
                await self._publish(ToolFrame(type="tool", client_id=cid, call_id=call_id,
                                        tool=tool, label=self._labels.get(call_id, tool),
                                        status=outcome, summary=summary))
            case FinalReply(reply=reply) | TurnFailed(reply=reply):
                await self._publish(reply_frame(cid, reply, self._page_of))
        return NOTHING


def reply_frame(client_id: str, reply: Reply,
                page_of: Callable[[str, str], str] | None = None) -> ReplyFrame:
    """``page_of(url, chunk_id)``: the source page of a citation without a web address."""
    return ReplyFrame(
        type="reply", client_id=client_id, turn_id=reply.turn_id, kind=reply.kind,
        text=reply.text, ephemeral=reply.ephemeral, retry_after_s=reply.retry_after_s,
        citations=[CitationFrame(number=c.number, title=c.title, url=c.url, source=c.source,
                                 snippet=c.snippet,
                                 page=page_of(c.url, c.chunk_id) if page_of else "")
                   for c in reply.citations],
        follow_ups=list(reply.follow_ups),
        tools=[{"tool": t.tool, "outcome": t.outcome, "summary": t.summary}
               for t in reply.tools],
        partial=reply.partial,
        confirm=next(({"id": a.value, "label": a.label} for a in reply.actions
                      if a.id == CONFIRM_YES), None))


class WidgetAdapter:
    def __init__(self, engine: Engine, signer: TokenSigner,
                 streams: ConversationStreams | None = None,
                 links: SourceLinks | None = None) -> None:
        self._engine = engine
        self._signer = signer
        self._links = links
        self.streams: ConversationStreams = streams or MemoryStreams()
        self._tasks: set[asyncio.Task[None]] = set()

    # -- who and where -----------------------------------------------------------------

    def tenant_for(self, key: str) -> TenantConfig:
        try:
            return self._engine.tenant_for(Binding("widget", key))
        except UnknownTenant:
            log.warning("widget request with an unknown key", extra={"channel": "widget"})
            raise WidgetRefused(404, "unknown_key", "unknown widget key") from None

    def origin_allowed(self, request: web.Request, origin: str, key: str) -> bool:
        """For a CORS preflight: the tenant of ``key`` allows ``origin`` (or, with no
        key, any tenant does)."""
        if not origin_of(origin):
            return False
        tenants = [self.tenant_for(key)] if key else self._engine.tenants()
        return any(origin_of(origin) in self._allowed(request, t) for t in tenants)

    @staticmethod
    def _allowed(request: web.Request, tenant: TenantConfig) -> set[str]:
        allowed = {origin_of(str(o)) for o in tenant.widget.allowed_origins}
        if tenant.widget.allow_own_origin:
            allowed.add(origin_of(f"{request.scheme}://{request.host}"))
        allowed.discard("")
        return allowed

    def check_origin(self, request: web.Request, tenant: TenantConfig,
                     required: bool = True) -> str:
        origin = request.headers.get("Origin", "")
        if not origin:
            if required:
                raise WidgetRefused(403, "origin", "the Origin header is required")
            return ""
        if origin_of(origin) not in self._allowed(request, tenant):
            log.warning("widget request from an origin the tenant does not allow",
                        extra={"tenant": tenant.id, "channel": "widget", "origin": origin})
            raise WidgetRefused(403, "origin", "this site is not allowed to use this widget")
        return origin

    def session(self, tenant: TenantConfig, token: str) -> Identity:
        """The identity of a fallback request (``POST /messages``, ``GET /events``): the
        session token the fallback's own hello (``POST /session``) issued. Identified
        tokens are accepted here — they were proven by that hello on this page load."""
        try:
            return self._signer.verify(token, tenant.id)
        except IdentityError as exc:
            raise WidgetRefused(401, "token", str(exc)) from None

    async def admit_hello(self, tenant: TenantConfig, ip: str) -> None:
        """A hello from one address costs a token of the tenant's per-IP bucket: every
        hello opens a conversation stream, which is memory an attacker could fill."""
        decision = await self._engine.admit(tenant, "widget-hello", ip,
                                            tenant.widget.ip_per_minute)
        if not decision.allowed:
            raise WidgetRefused(429, "rate_limited",
                                "too many new conversations from your address; try again "
                                f"in {max(1, round(decision.retry_after_s))} s")

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
        seq = await self.streams.resume_point(tenant.id, identity.subject)
        history: list[dict[str, Any]] = []
        if with_history:
            messages = await self._engine.transcript(tenant.id, "widget", identity.subject,
                                                     HISTORY_LIMIT)
            # Both messages of a turn carry the client id of its question, so a browser
            # that also gets the turn's live events shows it once.
            asked = {m.turn_id: m.platform_message_id.removeprefix("widget:")
                     for m in messages if m.role == "user"}
            for m in messages:
                history.append({"role": m.role, "text": m.text, "turn_id": m.turn_id,
                                "client_id": asked.get(m.turn_id, ""),
                                "citations": [self._with_page(tenant.id, c)
                                              for c in m.citations], "kind": m.kind,
                                "follow_ups": list(m.follow_ups)})
        return {"type": "welcome", "token": self._signer.issue(identity),
                "identified": identity.identified, "seq": seq, "history": history,
                "config": widget_config(tenant)}

    def _with_page(self, tenant: str, citation: dict[str, str]) -> dict[str, str]:
        chunk_id = citation.get("chunk_id", "")
        if citation.get("url") or not chunk_id or self._links is None:
            return dict(citation)
        return {**citation, "page": self._links.path(tenant, chunk_id)}

    # -- what visitors send ------------------------------------------------------------

    async def accept(self, tenant: TenantConfig, identity: Identity,
                     frame: SendMessage | SendFeedback | SendConfirm | Ping, ip: str
                     ) -> Event | None:
        """Run one frame; returns an event for this connection only (errors), if any."""
        if isinstance(frame, Ping):
            return {"type": "pong"}
        subject = identity.subject
        message = InboundMessage(
            binding=Binding("widget", tenant.widget.public_key), tenant_id=tenant.id,
            thread=identity.subject,
            author=Author(identity.user_id if identity.identified else identity.subject),
            text="", platform_message_id="")
        if isinstance(frame, SendFeedback):
            stored = await self._engine.record_feedback(message, frame.turn_id, frame.rating)
            await self.streams.publish(tenant.id, subject, {
                "type": "feedback", "turn_id": frame.turn_id, "rating": frame.rating,
                "stored": stored})
            return None
        if isinstance(frame, SendConfirm):
            yes = frame.decision == "yes"
            text, call = ("Confirm" if yes else "Cancel"), CommandCall.confirmation(frame.id, yes)
        else:
            text, call = frame.text.strip(), None
        if len(text) > tenant.widget.max_message_chars:
            return {"type": "error", "code": "too_long", "client_id": frame.client_id,
                    "message": f"Messages are limited to {tenant.widget.max_message_chars} "
                               "characters."}
        decision = await self._engine.admit(tenant, "widget-ip", ip,
                                            tenant.widget.ip_per_minute)
        if not decision.allowed:
            return {"type": "error", "code": "rate_limited", "client_id": frame.client_id,
                    "retry_after_s": round(decision.retry_after_s, 1),
                    "message": "You're sending messages too quickly; try again in "
                               f"{max(1, round(decision.retry_after_s))} s."}
        if not await self.streams.first_accept(tenant.id, subject, frame.client_id):
            return None  # a resend after a reconnect: already accepted once
        inbound = replace(message, text=text, command=call,
                          platform_message_id=f"widget:{frame.client_id}")
        await self.streams.begin_turn(tenant.id, subject, frame.client_id)
        await self.streams.publish(tenant.id, subject, {
            "type": "message", "role": "user", "text": inbound.text,
            "client_id": frame.client_id})
        task = asyncio.create_task(self._run(inbound, frame.client_id, tenant.id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return None

    async def _run(self, message: InboundMessage, client_id: str, tenant_id: str) -> None:
        """The turn runs apart from any connection: a dropped socket does not stop it."""
        subject = message.thread
        delivery = StreamDelivery(self.streams, client_id, tenant_id, subject, self._links)
        try:
            await self._engine.handle(message, delivery)
        except Exception:
            log.exception("widget turn failed", extra={"tenant": tenant_id, "channel": "widget"})
            await delivery.deliver(FinalReply("", Reply(
                "Sorry, something went wrong on our side. Please try again.",
                kind="apology")))
        finally:
            with contextlib.suppress(Exception):
                await self.streams.end_turn(tenant_id, subject, client_id)

    def redelivery(self, address: dict[str, object]) -> StreamDelivery:
        """A journaled turn's delivery after a restart: the conversation's (new) stream. A
        visitor who reconnects is told to reload and sees the stored answer."""
        tenant, subject = str(address.get("tenant", "")), str(address.get("subject", ""))
        return StreamDelivery(self.streams, str(address.get("client_id", "")), tenant,
                              subject, self._links)

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
