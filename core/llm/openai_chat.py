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
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from dataclasses import dataclass, field
from typing import Any, cast

import openai
from openai import AsyncOpenAI
from openai.types.chat import ChatCompletionMessageParam

from core.llm.base import Answer, AnswerRequest, AnswerUnavailable, DeltaCallback, ToolCall
from core.llm.pricing import cost_usd
from core.llm.prompt import build_messages, tool_params
from core.sessions.history import estimate_tokens
from core.sessions.models import TurnUsage
from observability import metrics

log = logging.getLogger("switchboard.llm")

_MAX_BACKOFF_S = 8.0


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


class OpenAIAnswerer:
    metered = True
    supports_tools = True

    def __init__(self, api_key: str, base_url: str | None = None) -> None:
        self._client = AsyncOpenAI(api_key=api_key, base_url=base_url, max_retries=0)
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
                    async with asyncio.timeout(min(request.timeout_s, remaining)):
                        await self._stream(model, messages, request, attempt, on_delta)
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
            stream = await self._client.chat.completions.create(
                model=model, messages=[],
                max_tokens=request.max_output_tokens, temperature=request.temperature,
                stream=True, stream_options={"include_usage": True},
                timeout=request.timeout_s, extra_body=body,
            )
            chunks = aiter(stream)
            while True:
                try:
                    chunk = await anext(chunks)
                except StopAsyncIteration:
                    break
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
        if not attempt.finished:
            raise _Retryable("truncated")

    @staticmethod
    def _read(chunk: Any, attempt: _Attempt) -> str:
        """The text of one chunk, noting usage and whether a choice finished. The SDK
        builds chunks without validation, so a chunk of the wrong shape shows up here."""
        try:
            if chunk.usage is not None:
                attempt.prompt_tokens = int(chunk.usage.prompt_tokens)
                attempt.completion_tokens = int(chunk.usage.completion_tokens)
            text = ""
            for choice in chunk.choices or ():
                if choice.finish_reason:
                    attempt.finished = True
                piece = choice.delta.content if choice.delta else None
                if piece:
                    text += str(piece)
                for fragment in (choice.delta.tool_calls if choice.delta else None) or ():
                    call = attempt.calls.setdefault(int(fragment.index), _PartialCall())
                    call.id += str(fragment.id or "")
                    if fragment.function is not None:
                        call.name += str(fragment.function.name or "")
                        call.arguments += str(fragment.function.arguments or "")
            return text
        except (AttributeError, TypeError, ValueError) as exc:
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
