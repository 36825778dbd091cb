"""Answers from any OpenAI-compatible chat completions API, streamed.

Per model: up to ``max_attempts`` attempts, each bounded by ``timeout_s`` for the whole
stream, with back-off on 429 (honouring ``Retry-After``), 5xx, connection errors,
timeouts and malformed stream chunks; then the tenant's fallback models in order. The
whole answer also has one time budget (``budget_s``) across all of that, so a stalled
provider costs the user at most that long before the apology.

When the request offers tools, the model may answer with tool calls instead of (or
after) text: their ``id``, ``name`` and ``arguments`` arrive in fragments across chunks,
keyed by index, and are assembled here; the agent loop (``core/engine/agent.py``) runs
them. A stream counts as complete only when a choice reports its ``finish_reason``. One that
ends without it (a clean cut) or is cut after text reached the user is not retried (the
user would see the answer twice): the partial text is returned marked as interrupted,
and the engine never caches it. The SDK's own retries are off so that this is the one
policy.

The stream is read as raw server-sent events and each chunk decoded with ``json.loads``,
through the SDK's ``with_streaming_response`` over its aiohttp transport: building a
typed chunk per token over the default HTTP stack cost 3.2 ms of CPU for a 20-token
answer against 0.7 ms this way (``benchmarks/llm_client.py``), and the engine reads
four fields of each chunk.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, cast

import httpx2
import openai
from openai import AsyncOpenAI
from openai.types.chat import ChatCompletionMessageParam
from opentelemetry.trace import SpanKind

from core.llm.base import Answer, AnswerRequest, AnswerUnavailable, DeltaCallback, ToolCall
from core.llm.pricing import cost_usd
from core.llm.prompt import build_messages, tool_params
from core.sessions.history import estimate_tokens
from core.sessions.models import TurnUsage
from observability import metrics
from observability.tracing import span as child_span

log = logging.getLogger("switchboard.llm")

_MAX_BACKOFF_S = 8.0
_POOL = httpx2.Limits(max_connections=256, max_keepalive_connections=64)
"""Connections to the provider per process: enough for every turn in flight at the
benchmarked peak, bounded so a stalled provider cannot exhaust file descriptors."""


@dataclass(slots=True)
class _PartialCall:
    id: str = ""
    name: str = ""
    arguments: str = ""


@dataclass(slots=True)
class _Attempt:
    text: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finished: bool = False
    calls: dict[int, _PartialCall] = field(default_factory=dict)
    """Tool calls as their fragments arrive, by the index the stream gives them."""


class _Retryable(Exception):
    def __init__(self, reason: str, retry_after_s: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after_s = retry_after_s


class _NextModel(Exception):
    pass


def _retry_after(exc: openai.APIStatusError) -> float | None:
    value = exc.response.headers.get("retry-after")
    try:
        return min(float(value), _MAX_BACKOFF_S) if value else None
    except ValueError:
        return None


async def _events(lines: AsyncIterator[str]) -> AsyncIterator[Any]:
    """The decoded JSON of each server-sent event, up to ``[DONE]``. An event's data may
    span several ``data:`` lines (joined by newlines); a blank line ends the event;
    comments and other fields are skipped, as the SSE specification says."""
    data: list[str] = []
    async for line in lines:
        if line:
            if line.startswith("data:"):
                data.append(line[6:] if line.startswith("data: ") else line[5:])
            continue
        if not data:
            continue
        payload, data = "\n".join(data), []
        if payload.startswith("[DONE]"):
            return
        yield json.loads(payload)
    if data and not data[0].startswith("[DONE]"):
        yield json.loads("\n".join(data))


class OpenAIAnswerer:
    metered = True
    supports_tools = True

    def __init__(self, api_key: str, base_url: str | None = None) -> None:
        self._client = AsyncOpenAI(api_key=api_key, base_url=base_url, max_retries=0,
                                   http_client=openai.DefaultAioHttpClient(limits=_POOL))
        self.name = f"openai-compatible ({self._client.base_url})"

    async def answer(self, request: AnswerRequest, on_delta: DeltaCallback) -> Answer:
        messages = cast(list[ChatCompletionMessageParam], build_messages(request))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + request.budget_s
        last_reason = "no model configured"
        for model in (request.model, *request.fallback_models):
            attempt_no = 0
            while attempt_no < request.max_attempts:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    metrics.LLM_ERRORS.labels(model, "budget").inc()
                    raise AnswerUnavailable(f"no answer within {request.budget_s:.0f}s "
                                            f"(last: {last_reason})")
                attempt_no += 1
                attempt = _Attempt()
                try:
                    with child_span("llm.chat", kind=SpanKind.CLIENT, attributes={
                            "gen_ai.request.model": model,
                            "switchboard.attempt": attempt_no}) as span:
                        async with asyncio.timeout(min(request.timeout_s, remaining)):
                            await self._stream(model, messages, request, attempt, on_delta)
                        span.set_attribute("gen_ai.usage.output_chars", len(attempt.text))
                except _Retryable as exc:
                    last_reason = exc.reason
                    metrics.LLM_ERRORS.labels(model, exc.reason).inc()
                    if attempt.text:
                        return self._finish(model, request, messages, attempt, interrupted=True)
                    if attempt_no < request.max_attempts:
                        pause = self._backoff(attempt_no, exc.retry_after_s)
                        await asyncio.sleep(max(0.0, min(pause, deadline - loop.time())))
                    continue
                except TimeoutError:
                    last_reason = "timeout"
                    metrics.LLM_ERRORS.labels(model, "timeout").inc()
                    if attempt.text:
                        return self._finish(model, request, messages, attempt, interrupted=True)
                    continue
                except _NextModel as exc:
                    last_reason = str(exc)
                    metrics.LLM_ERRORS.labels(model, "rejected").inc()
                    break
                return self._finish(model, request, messages, attempt, interrupted=False)
            log.warning("model %s gave no answer (%s)", model, last_reason)
        raise AnswerUnavailable(last_reason)

    async def _stream(self, model: str, messages: list[ChatCompletionMessageParam],
                      request: AnswerRequest, attempt: _Attempt,
                      on_delta: DeltaCallback) -> None:
        """One attempt. Transport and protocol failures become ``_Retryable``; an error
        raised by ``on_delta`` (the delivery) is not the model's and propagates."""
        try:
            # The messages and tools are plain JSON already (``build_messages``), so they
            # go as the request's extra body, which the SDK sends as it is. Passed as
            # ``messages=``, the SDK would first walk them against its TypedDicts — a
            # no-op for plain strings that costs about 2.8 ms a call with 20 messages of
            # history, more than the rest of a turn (benchmarks/results/widget.json).
            body: dict[str, Any] = {"messages": messages}
            if request.tools:
                body["tools"] = tool_params(request)
            async with self._client.chat.completions.with_streaming_response.create(
                model=model, messages=[],
                max_tokens=request.max_output_tokens, temperature=request.temperature,
                stream=True, stream_options={"include_usage": True},
                timeout=request.timeout_s, extra_body=body,
            ) as response:
                async for chunk in _events(response.iter_lines()):
                    text = self._read(chunk, attempt)
                    if text:
                        attempt.text += text
                        await on_delta(text)
        except openai.RateLimitError as exc:
            raise _Retryable("rate_limited", _retry_after(exc)) from exc
        except openai.InternalServerError as exc:
            raise _Retryable(f"server_error_{exc.status_code}", _retry_after(exc)) from exc
        except openai.APITimeoutError as exc:
            raise _Retryable("timeout") from exc
        except openai.APIConnectionError as exc:
            raise _Retryable("connection") from exc
        except openai.AuthenticationError as exc:
            raise AnswerUnavailable("the LLM provider rejected the API key") from exc
        except openai.APIStatusError as exc:
            if exc.status_code >= 500:
                raise _Retryable(f"server_error_{exc.status_code}") from exc
            raise _NextModel(f"model {model!r} rejected: HTTP {exc.status_code}") from exc
        except openai.APIError as exc:
            raise _Retryable("stream_error") from exc
        except json.JSONDecodeError as exc:
            raise _Retryable("malformed_chunk") from exc
        except httpx2.TransportError as exc:
            # A connection cut or reset while the body streams (the SDK maps only
            # failures before the response to APIConnectionError).
            raise _Retryable("connection") from exc
        if not attempt.finished:
            raise _Retryable("truncated")

    @staticmethod
    def _read(chunk: Any, attempt: _Attempt) -> str:
        """The text of one decoded chunk, noting usage, tool-call fragments and whether a
        choice finished. A chunk of the wrong shape is the provider's fault: retryable."""
        try:
            if "error" in chunk:
                raise _Retryable("stream_error")
            usage = chunk.get("usage")
            if usage:
                attempt.prompt_tokens = int(usage["prompt_tokens"])
                attempt.completion_tokens = int(usage["completion_tokens"])
            text = ""
            for choice in chunk.get("choices") or ():
                if choice.get("finish_reason"):
                    attempt.finished = True
                delta = choice.get("delta") or {}
                piece = delta.get("content")
                if piece:
                    text += str(piece)
                for fragment in delta.get("tool_calls") or ():
                    call = attempt.calls.setdefault(int(fragment["index"]), _PartialCall())
                    call.id += str(fragment.get("id") or "")
                    function = fragment.get("function")
                    if function is not None:
                        call.name += str(function.get("name") or "")
                        call.arguments += str(function.get("arguments") or "")
            return text
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise _Retryable("malformed_chunk") from exc

    @staticmethod
    def _backoff(attempt_no: int, retry_after_s: float | None) -> float:
        if retry_after_s is not None:
            return retry_after_s
        base: float = min(_MAX_BACKOFF_S, 0.25 * 2.0 ** (attempt_no - 1))
        return base * random.uniform(0.8, 1.2)

    @staticmethod
    def _finish(model: str, request: AnswerRequest, messages: list[ChatCompletionMessageParam],
                attempt: _Attempt, *, interrupted: bool) -> Answer:
        prompt = attempt.prompt_tokens or sum(
            estimate_tokens(str(cast(dict[str, Any], m).get("content") or "")) for m in messages)
        completion = attempt.completion_tokens or (estimate_tokens(attempt.text)
                                                   if attempt.text else 0)
        usage = TurnUsage(model, prompt, completion,
                          cost_usd(model, prompt, completion, request.prices))
        calls = tuple(ToolCall(c.id or f"call_{index}", c.name, c.arguments or "{}")
                      for index, c in sorted(attempt.calls.items()) if c.name)
        return Answer(attempt.text, usage, interrupted=interrupted,
                      tool_calls=() if interrupted else calls)

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        await self._client.close()
