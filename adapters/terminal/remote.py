"""The terminal channel over a local HTTP interface of a running ``serve``.

On the embedded defaults the local Qdrant store belongs to one process, so a
``switchboard chat`` or ``ingest`` started beside ``serve`` could not read or write the
documents. ``serve`` therefore offers these two to its own machine: it writes its
address and a random token to ``$SWITCHBOARD_DATA_DIR/serve.json`` (readable by its user
only), and the commands send their work there instead of opening the stores themselves.
A request must carry the token and come from loopback; whoever can read the file runs
the process's user's commands anyway, and is the terminal's operator as before.

Turn events and ingestion progress come back as one JSON object a line, so the
terminal renders them as they happen, exactly as it renders a local turn.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from adapters.http_input import bearer_token, header_bytes, read_json_object
from adapters.terminal.channel import OPERATOR, terminal_message
from core.engine import Engine, IngestOutcome, KnowledgeUnavailable, UnknownTenant
from core.messages import CONFIRM, CommandCall
from core.replies import Action, Citation, Reply
from core.turns.chain import Delivery
from core.turns.events import (
    NOTHING,
    FinalReply,
    Receipt,
    TextDelta,
    ToolCalled,
    ToolReturned,
    TurnEvent,
    TurnFailed,
)

log = logging.getLogger("switchboard.terminal")
NAME = r"^[A-Za-z0-9_.:@-]{1,128}$"


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ChatRequest(_Body):
    tenant: str = Field(pattern=NAME)
    text: str = Field(min_length=1, max_length=20_000)
    thread: str = Field("terminal", pattern=NAME)
    user: str = Field(OPERATOR, pattern=NAME)
    message_id: str = Field(pattern=NAME)
    confirm: str = Field("", pattern=r"^([A-Za-z0-9_-]{8,64})?$",
                         description="answering a proposed change: its id")
    confirmed: bool = False


class IngestRequest(_Body):
    tenant: str = Field(pattern=NAME)
    sources: list[str] = Field(min_length=0, max_length=200)
    kb: str = Field("default", pattern=r"^[a-z0-9_-]{1,32}$")
    reindex: bool = False


def _reply_json(reply: Reply) -> dict[str, Any]:
    return {"text": reply.text, "kind": reply.kind, "follow_ups": list(reply.follow_ups),
            "actions": [{"id": a.id, "label": a.label, "value": a.value}
                        for a in reply.actions],
            "citations": [{"number": c.number, "title": c.title, "source": c.source,
                           "url": c.url, "snippet": c.snippet} for c in reply.citations]}


def reply_from_json(data: dict[str, Any]) -> Reply:
    return Reply(str(data["text"]), kind=data.get("kind", "answer"),
                 follow_ups=tuple(data.get("follow_ups") or ()),
                 actions=tuple(Action(str(a["id"]), str(a["label"]), str(a["value"]))
                               for a in data.get("actions") or ()),
                 citations=tuple(Citation(number=int(c["number"]), title=c["title"],
                                          source=c["source"], url=c["url"],
                                          snippet=c["snippet"])
                                 for c in data.get("citations") or ()))


class LineDelivery:
    """A turn's events as JSON lines on the response."""

    address: dict[str, object] = {}

    def __init__(self, response: web.StreamResponse) -> None:
        self._response = response

    async def _line(self, data: dict[str, Any]) -> None:
        await self._response.write(json.dumps(data).encode() + b"\n")

    async def deliver(self, event: TurnEvent) -> Receipt:
        match event:
            case TextDelta(text=text):
                await self._line({"type": "delta", "text": text})
            case ToolCalled(call_id=call_id, tool=tool, label=label):
                await self._line({"type": "tool_called", "call_id": call_id, "tool": tool,
                                  "label": label})
            case ToolReturned(call_id=call_id, tool=tool, outcome=outcome, summary=summary):
                await self._line({"type": "tool_returned", "call_id": call_id, "tool": tool,
                                  "outcome": outcome, "summary": summary})
            case FinalReply(reply=reply) | TurnFailed(reply=reply):
                await self._line({"type": "reply", "failed": isinstance(event, TurnFailed),
                                  "reply": _reply_json(reply)})
        return NOTHING


class LocalInterface:
    """``POST /local/v1/chat`` and ``/local/v1/ingest``, for this machine's terminal."""

    def __init__(self, engine: Callable[[], Engine], token: Callable[[], str]) -> None:
        self._engine = engine
        self._token = token

    def register(self, app: web.Application) -> None:
        app.router.add_post("/local/v1/chat", self.chat)
        app.router.add_post("/local/v1/ingest", self.ingest)

    def _allow(self, request: web.Request) -> None:
        token, given = self._token(), bearer_token(request)
        try:
            loopback = ipaddress.ip_address((request.remote or "").split("%")[0]).is_loopback
        except ValueError:
            loopback = False
        if not (token and given and loopback
                and hmac.compare_digest(header_bytes(given), token.encode())):
            raise web.HTTPUnauthorized(text="the local interface needs this machine and "
                                            "the token in serve.json")

    async def _body(self, request: web.Request, model: type[_Body]) -> Any:
        try:
            return model.model_validate(await read_json_object(request))
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            raise web.HTTPUnprocessableEntity(
                text=f"{'.'.join(map(str, first['loc']))}: {first['msg']}") from None

    async def chat(self, request: web.Request) -> web.StreamResponse:
        self._allow(request)
        body: ChatRequest = await self._body(request, ChatRequest)
        response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await response.prepare(request)
        message = terminal_message(body.tenant, body.thread, body.user, body.text,
                                   body.message_id, CommandCall.confirmation(
                                       body.confirm, body.confirmed) if body.confirm else None)
        result = await self._engine().handle(message, LineDelivery(response))
        await response.write(json.dumps({"type": "done", "outcome": result.outcome}).encode()
                             + b"\n")
        await response.write_eof()
        return response

    async def ingest(self, request: web.Request) -> web.StreamResponse:
        self._allow(request)
        body: IngestRequest = await self._body(request, IngestRequest)
        engine = self._engine()
        try:
            tenant = engine.tenant(body.tenant)
        except UnknownTenant:
            raise web.HTTPNotFound(text=f"no tenant {body.tenant!r}") from None
        response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await response.prepare(request)
        lines: asyncio.Queue[bytes | None] = asyncio.Queue()

        def progress(outcome: IngestOutcome) -> None:
            lines.put_nowait(json.dumps({"type": "outcome", **_outcome(outcome)}).encode()
                             + b"\n")

        async def pump() -> None:
            while (line := await lines.get()) is not None:
                await response.write(line)

        writer = asyncio.create_task(pump())
        try:
            report = await engine.ingest_sources(tenant, body.sources, kb=body.kb,
                                                 reindex=body.reindex, progress=progress)
            final: dict[str, Any] = {"type": "report", "summary": report.summary(),
                                     "outcomes": [_outcome(o) for o in report.outcomes]}
        except KnowledgeUnavailable as exc:
            final = {"type": "error", "message": str(exc)}
        lines.put_nowait(json.dumps(final).encode() + b"\n")
        lines.put_nowait(None)
        await writer
        await response.write_eof()
        return response


def _outcome(outcome: IngestOutcome) -> dict[str, Any]:
    return {"source": outcome.source, "status": outcome.status, "chunks": outcome.chunks,
            "reason": outcome.reason}


async def _lines(response: aiohttp.ClientResponse) -> AsyncIterator[dict[str, Any]]:
    async for raw in response.content:
        if raw.strip():
            yield json.loads(raw)


class RemoteEngine:
    """The client side: what ``switchboard chat`` and ``ingest`` call instead of an
    engine of their own while ``serve`` holds the stores."""

    def __init__(self, url: str, token: str) -> None:
        self._url = url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}"}

    async def _post(self, path: str, body: dict[str, Any]
                    ) -> AsyncIterator[dict[str, Any]]:
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=5)
        async with aiohttp.ClientSession(timeout=timeout) as http, http.post(
                f"{self._url}{path}", json=body, headers=self._headers) as response:
            if response.status != 200:
                raise RuntimeError(f"serve answered {response.status}: "
                                   f"{(await response.text())[:300]}")
            async for line in _lines(response):
                yield line

    async def handle(self, tenant: str, thread: str, user: str, text: str, message_id: str,
                     delivery: Delivery, command: CommandCall | None = None) -> str:
        """One turn through ``serve``, its events replayed into ``delivery``. The only
        command a terminal sends as data is the answer to a proposed change."""
        outcome = "error"
        confirm = command.args if command is not None and command.name == CONFIRM else {}
        async for line in self._post("/local/v1/chat", {
                "tenant": tenant, "thread": thread, "user": user, "text": text,
                "message_id": message_id, "confirm": str(confirm.get("id", "")),
                "confirmed": confirm.get("decision") == "yes"}):
            kind = line.get("type")
            if kind == "delta":
                await delivery.deliver(TextDelta("", str(line["text"])))
            elif kind == "tool_called":
                await delivery.deliver(ToolCalled("", line["call_id"], line["tool"],
                                                  label=line.get("label", "")))
            elif kind == "tool_returned":
                await delivery.deliver(ToolReturned("", line["call_id"], line["tool"],
                                                    line["outcome"], line.get("summary", "")))
            elif kind == "reply":
                reply = reply_from_json(line["reply"])
                await delivery.deliver(TurnFailed("", reply) if line.get("failed")
                                       else FinalReply("", reply))
            elif kind == "done":
                outcome = str(line["outcome"])
        return outcome

    async def ingest(self, tenant: str, sources: list[str], kb: str, reindex: bool,
                     progress: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
        """Ingestion through ``serve``: ``progress`` per document, then the report."""
        async for line in self._post("/local/v1/ingest", {
                "tenant": tenant, "sources": sources, "kb": kb, "reindex": reindex}):
            if line.get("type") == "outcome":
                progress(line)
            elif line.get("type") == "error":
                raise RuntimeError(str(line["message"]))
            elif line.get("type") == "report":
                return line
        raise RuntimeError("serve ended the ingestion without a report")

