"""A local OpenAI-compatible chat completions server, for the real ``openai`` client.

Speaks the streaming wire format (SSE ``chat.completion.chunk`` frames, a usage chunk with
empty choices when ``stream_options.include_usage`` is set, then ``[DONE]``) and lets a
test inject faults per request: delay, HTTP errors with Retry-After, a stream cut at the
socket, a stream that ends cleanly without ``finish_reason`` or ``[DONE]``, and a garbage
(non-JSON) ``data:`` line in the middle of a stream.
The answer echoes the question, so tests can tell turns apart without a real model.

Tool calling: a test gives the fake a ``script`` — what the model does at each step of
a turn (``Plan``: text, tool calls, or both). Tool calls stream the way OpenAI streams
them: ``delta.tool_calls`` fragments keyed by index, the id, the name and the arguments
each split across chunks, then ``finish_reason: "tool_calls"``. The fake rejects what
the real API rejects (HTTP 400): a tool without a valid name or object parameters, a
``tool`` message that answers no preceding call, an assistant's tool calls left
without answers. The model obeys the script, whatever the tools say.

Moderation (``POST /v1/moderations``) answers in the API's shape, one result per input
with every category: an input is flagged for a category when it contains one of
``flagged_phrases`` (phrase → category); ``moderation_status`` makes it fail instead.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import struct
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass(slots=True)
class Fault:
    status: int = 0
    retry_after: float | None = None
    delay_s: float = 0.0
    cut_after_chunks: int | None = None
    """Close the socket after this many chunks."""
    clean_cut_after_chunks: int | None = None
    """End the response properly after this many chunks, with no finish_reason or [DONE]."""
    garbage_at_chunk: int | None = None
    """Send a data line that is not JSON in place of this chunk."""
    error_at_chunk: int | None = None
    """Send an error event (``data: {"error": …}``, as the API does when a stream fails
    on its side) in place of this chunk, then end the response."""
    model: str | None = None


@dataclass(slots=True)
class Plan:
    """One step of the scripted model: text to write and tools to call (name, arguments
    as a dict, or as raw text to send malformed JSON)."""

    text: str = ""
    calls: list[tuple[str, dict[str, Any] | str]] = field(default_factory=list)


Script = Callable[[dict[str, Any], int], Plan | None]
"""Given the request body and the step number (1 = the first call of the turn), what
the model does; None falls back to the echo answer."""


def steps(*plans: Plan | Callable[[dict[str, Any]], Plan]) -> Script:
    """A script that plays ``plans`` in order, one per step of each turn; past the last
    it repeats the last (so a model that keeps calling tools keeps calling them)."""
    def script(body: dict[str, Any], step: int) -> Plan:
        plan = plans[min(step, len(plans)) - 1]
        return plan(body) if callable(plan) else plan
    return script


def tool_results(body: dict[str, Any]) -> list[str]:
    """The tool results the request carries, in order (what the model was told)."""
    return [str(m.get("content", "")) for m in body["messages"] if m.get("role") == "tool"]


MODERATION_CATEGORIES = (
    "harassment", "harassment/threatening", "hate", "hate/threatening", "illicit",
    "illicit/violent", "self-harm", "self-harm/intent", "self-harm/instructions", "sexual",
    "sexual/minors", "violence", "violence/graphic")
_TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


def _invalid(body: dict[str, Any]) -> str:
    """Why the real API would refuse this request with a 400, or ""."""
    if not body.get("messages"):
        return "[] is too short - 'messages'"
    for tool in body.get("tools") or []:
        function = tool.get("function") or {}
        if tool.get("type") != "function" or not _TOOL_NAME.match(str(function.get("name"))):
            return "Invalid 'tools': each tool needs type 'function' and a valid name"
        if (function.get("parameters") or {"type": "object"}).get("type") != "object":
            return "Invalid schema for function: parameters must be an object schema"
    open_calls: set[str] = set()
    for message in body["messages"]:
        if message.get("role") == "tool":
            if message.get("tool_call_id") not in open_calls:
                return ("Invalid parameter: messages with role 'tool' must be a response "
                        "to a preceding message with 'tool_calls'.")
            open_calls.discard(message["tool_call_id"])
            continue
        if open_calls:
            return ("An assistant message with 'tool_calls' must be followed by tool "
                    "messages responding to each 'tool_call_id'.")
        open_calls = {c["id"] for c in message.get("tool_calls") or []}
    if open_calls:
        return ("An assistant message with 'tool_calls' must be followed by tool messages "
                "responding to each 'tool_call_id'.")
    return ""


def step_of(body: dict[str, Any]) -> int:
    """Which step of the turn this request is: 1 + tool-calling assistant messages after
    the last user message."""
    messages = body["messages"]
    last_user = max(i for i, m in enumerate(messages) if m.get("role") == "user")
    return 1 + sum(1 for m in messages[last_user:] if m.get("tool_calls"))


@dataclass(slots=True)
class FakeOpenAI:
    faults: deque[Fault] = field(default_factory=deque)
    requests: list[dict[str, Any]] = field(default_factory=list)
    delay_s: float = 0.0
    chunk_delay_s: float = 0.0
    """Pause between streamed pieces: answers that take a while to arrive."""
    unknown_models: set[str] = field(default_factory=set)
    answer_prefix: str = "Answer to"
    url: str = ""
    script: Script | None = None

    def inject(self, *faults: Fault) -> None:
        self.faults.extend(faults)

    def reset(self) -> None:
        self.faults.clear()
        self.requests.clear()
        self.delay_s = 0.0
        self.unknown_models.clear()
        self.answer_prefix = "Answer to"
        self.script = None
        self.moderation_status = 0

    embedding_dimension: int = 8
    flagged_phrases: dict[str, str] = field(default_factory=lambda: {
        "step-by-step nerve agent": "illicit/violent", "i will hurt you": "harassment/threatening"})
    moderation_status: int = 0

    async def moderations(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests.append(body)
        if self.moderation_status:
            return _error(self.moderation_status, "injected", "injected moderation fault")
        if body.get("model") not in ("omni-moderation-latest", "text-moderation-latest"):
            return _error(400, "invalid_request_error", f"unknown model {body.get('model')}")
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        results = []
        for text in inputs:
            hits = {c for p, c in self.flagged_phrases.items() if p in str(text).lower()}
            results.append({
                "flagged": bool(hits),
                "categories": {c: c in hits for c in MODERATION_CATEGORIES},
                "category_scores": {c: 0.97 if c in hits else 0.001
                                    for c in MODERATION_CATEGORIES},
                "category_applied_input_types": {c: ["text"] for c in MODERATION_CATEGORIES}})
        return web.json_response({"id": f"modr-{int(time.time() * 1000)}",
                                  "model": "omni-moderation-2024-09-26", "results": results})

    async def embeddings(self, request: web.Request) -> web.Response:
        """Deterministic vectors from the text's bytes; base64 float32 when asked."""
        body = await request.json()
        self.requests.append(body)
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        data = []
        for index, text in enumerate(inputs):
            vector = [0.0] * self.embedding_dimension
            for position, byte in enumerate(str(text).lower().encode()):
                vector[(byte + position) % self.embedding_dimension] += 1.0
            if body.get("encoding_format") == "base64":
                encoded: Any = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
            else:
                encoded = vector
            data.append({"object": "embedding", "index": index, "embedding": encoded})
        tokens = sum(len(str(t).split()) for t in inputs)
        return web.json_response({"object": "list", "data": data, "model": body["model"],
                                  "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})

    def answer_for(self, body: dict[str, Any]) -> str:
        question = body["messages"][-1]["content"]
        return f"{self.answer_prefix}: {question} (model {body['model']})"

    async def chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append(body)
        fault = self._next_fault(body["model"])
        if body["model"] in self.unknown_models:
            return _error(404, "model_not_found", f"The model {body['model']} does not exist")
        delay = fault.delay_s if fault else self.delay_s
        if delay:
            await asyncio.sleep(delay)
        if fault and fault.status:
            headers = {"retry-after": str(fault.retry_after)} if fault.retry_after else {}
            return _error(fault.status, "injected", "injected fault", headers)
        problem = _invalid(body)
        if problem:
            return _error(400, "invalid_request_error", problem)
        plan = self.script(body, step_of(body)) if self.script is not None else None
        if plan is not None and plan.calls and not body.get("tools"):
            plan = Plan(plan.text or "I have no tools to call here.")
        text = plan.text if plan is not None else self.answer_for(body)
        if not body.get("stream"):
            return web.json_response(_completion(body["model"], text))
        return await self._stream(request, body, text, fault or Fault(),
                                  plan.calls if plan is not None else [])

    def _next_fault(self, model: str) -> Fault | None:
        for fault in list(self.faults):
            if fault.model in (None, model):
                self.faults.remove(fault)
                return fault
        return None

    async def _stream(self, request: web.Request, body: dict[str, Any], text: str,
                      fault: Fault, calls: list[tuple[str, dict[str, Any] | str]] | None = None
                      ) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                               "Cache-Control": "no-cache"})
        await response.prepare(request)
        model, created = body["model"], int(time.time())
        words = text.split(" ") if text else []
        pieces = [{"role": "assistant", "content": ""}] + [
            {"content": w if i == 0 else " " + w} for i, w in enumerate(words)]
        pieces += _call_fragments(calls or [], created)
        for index, delta in enumerate(pieces):
            if fault.cut_after_chunks is not None and index > fault.cut_after_chunks:
                assert request.transport is not None
                request.transport.close()
                return response
            if fault.clean_cut_after_chunks is not None and index > fault.clean_cut_after_chunks:
                await response.write_eof()
                return response
            if index == fault.error_at_chunk:
                await _send(response, {"error": {"message": "The server had an error",
                                                 "type": "server_error"}})
                await response.write_eof()
                return response
            if index == fault.garbage_at_chunk:
                await response.write(b'data: {"id": "chatcmpl-fake", "choices": [{"del\n\n')
                continue
            await _send(response, _chunk(model, created, delta, None))
            if self.chunk_delay_s:
                await asyncio.sleep(self.chunk_delay_s)
        await _send(response, _chunk(model, created, {}, "tool_calls" if calls else "stop"))
        if (body.get("stream_options") or {}).get("include_usage"):
            prompt = sum(len(str(m.get("content") or "").split()) for m in body["messages"])
            await _send(response, {"id": "chatcmpl-fake", "object": "chat.completion.chunk",
                                   "created": created, "model": model, "choices": [],
                                   "usage": {"prompt_tokens": prompt,
                                             "completion_tokens": len(words),
                                             "total_tokens": prompt + len(words)}})
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response


def _call_fragments(calls: list[tuple[str, dict[str, Any] | str]], created: int
                    ) -> list[dict[str, Any]]:
    """Tool calls as OpenAI streams them, each split over several chunks: the first
    carries the index, half the id and half the name; the next the rest of both; then
    the arguments arrive a few characters at a time."""
    pieces: list[dict[str, Any]] = []
    for index, (name, args) in enumerate(calls):
        call_id = f"call_{created % 10_000}_{index}_{abs(hash(name)) % 10_000}"
        arguments = args if isinstance(args, str) else json.dumps(args)
        half_id, half_name = len(call_id) // 2, max(1, len(name) // 2)
        pieces.append({"tool_calls": [{"index": index, "id": call_id[:half_id],
                                       "type": "function",
                                       "function": {"name": name[:half_name],
                                                    "arguments": ""}}]})
        pieces.append({"tool_calls": [{"index": index, "id": call_id[half_id:],
                                       "function": {"name": name[half_name:]}}]})
        for start in range(0, len(arguments), 7):
            pieces.append({"tool_calls": [{"index": index, "function": {
                "arguments": arguments[start:start + 7]}}]})
    return pieces


def _chunk(model: str, created: int, delta: dict[str, Any], finish: str | None
           ) -> dict[str, Any]:
    return {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": created,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def _completion(model: str, text: str) -> dict[str, Any]:
    return {"id": "chatcmpl-fake", "object": "chat.completion", "created": int(time.time()),
            "model": model, "choices": [{"index": 0, "finish_reason": "stop",
                                         "message": {"role": "assistant", "content": text}}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}


async def _send(response: web.StreamResponse, payload: dict[str, Any]) -> None:
    await response.write(f"data: {json.dumps(payload)}\n\n".encode())


def _error(status: int, code: str, message: str,
           headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": {"message": message, "type": code, "code": code}},
                             status=status, headers=headers)


async def start_fake_openai(fake: FakeOpenAI, host: str = "127.0.0.1"
                            ) -> tuple[FakeOpenAI, web.AppRunner]:
    app = web.Application()
    app.router.add_post("/v1/chat/completions", fake.chat)
    app.router.add_post("/v1/embeddings", fake.embeddings)
    app.router.add_post("/v1/moderations", fake.moderations)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    fake.url = f"http://{host}:{port}/v1"
    return fake, runner
