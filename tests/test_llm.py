"""The OpenAI-compatible answerer against a local fake speaking the streaming protocol."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

import pytest

from core.llm.base import AnswerRequest, AnswerUnavailable
from core.llm.extractive import NO_KNOWLEDGE, ExtractiveAnswerer
from core.llm.openai_chat import OpenAIAnswerer
from tests.fakes.openai_server import FakeOpenAI, Fault


def request(**overrides: object) -> AnswerRequest:
    base: dict[str, object] = dict(system_prompt="Be brief.", question="What is up?",
                                   model="gpt-4o-mini", timeout_s=2.0, max_attempts=3)
    base.update(overrides)
    return AnswerRequest(**base)  # type: ignore[arg-type]


class Deltas(list[str]):
    async def __call__(self, text: str) -> None:
        self.append(text)


async def test_streams_deltas_and_reports_usage_and_cost(
        llm: FakeOpenAI, openai_answerer: Callable[[], OpenAIAnswerer]) -> None:
    deltas = Deltas()
    answer = await openai_answerer().answer(request(), deltas)
    assert answer.text == "Answer to: What is up? (model gpt-4o-mini)"
    assert "".join(deltas) == answer.text and len(deltas) > 3
    assert answer.usage.model == "gpt-4o-mini"
    assert answer.usage.completion_tokens == 7
    assert answer.usage.cost_usd > 0
    sent = llm.requests[0]
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}
    assert sent["messages"][0] == {"role": "system", "content": "Be brief."}


async def test_server_errors_are_retried(llm: FakeOpenAI,
                                         openai_answerer: Callable[[], OpenAIAnswerer]) -> None:
    llm.inject(Fault(status=500), Fault(status=503))
    answer = await openai_answerer().answer(request(), Deltas())
    assert answer.text.startswith("Answer to")
    assert len(llm.requests) == 3


async def test_rate_limit_waits_for_retry_after(
        llm: FakeOpenAI, openai_answerer: Callable[[], OpenAIAnswerer]) -> None:
    llm.inject(Fault(status=429, retry_after=0.6))
    started = time.monotonic()
    answer = await openai_answerer().answer(request(), Deltas())
    assert time.monotonic() - started >= 0.6
    assert answer.text.startswith("Answer to") and len(llm.requests) == 2


async def test_timeout_exhausts_attempts_then_raises(
        llm: FakeOpenAI, openai_answerer: Callable[[], OpenAIAnswerer]) -> None:
    llm.delay_s = 1.0
    with pytest.raises(AnswerUnavailable) as raised:
        await openai_answerer().answer(request(timeout_s=0.2, max_attempts=2), Deltas())
    assert raised.value.reason == "timeout"
    await asyncio.sleep(0)
    assert len(llm.requests) == 2


async def test_fallback_model_answers_when_primary_is_unknown(
        llm: FakeOpenAI, openai_answerer: Callable[[], OpenAIAnswerer]) -> None:
    llm.unknown_models.add("gpt-missing")
    answer = await openai_answerer().answer(
        request(model="gpt-missing", fallback_models=("gpt-4o-mini",)), Deltas())
    assert answer.usage.model == "gpt-4o-mini"
    assert [r["model"] for r in llm.requests] == ["gpt-missing", "gpt-4o-mini"]


async def test_fallback_after_primary_keeps_failing(
        llm: FakeOpenAI, openai_answerer: Callable[[], OpenAIAnswerer]) -> None:
    llm.inject(*[Fault(status=500, model="primary")] * 2)
    answer = await openai_answerer().answer(
        request(model="primary", fallback_models=("backup",), max_attempts=2), Deltas())
    assert answer.usage.model == "backup"


async def test_stream_cut_before_any_text_is_retried(
        llm: FakeOpenAI, openai_answerer: Callable[[], OpenAIAnswerer]) -> None:
    llm.inject(Fault(cut_after_chunks=0))
    deltas = Deltas()
    answer = await openai_answerer().answer(request(), deltas)
    assert not answer.interrupted
    assert "".join(deltas) == answer.text


async def test_stream_cut_mid_answer_is_not_repeated(
        llm: FakeOpenAI, openai_answerer: Callable[[], OpenAIAnswerer]) -> None:
    llm.inject(Fault(cut_after_chunks=3))
    deltas = Deltas()
    answer = await openai_answerer().answer(request(), deltas)
    assert answer.interrupted
    assert answer.text == "".join(deltas) == "Answer to: What"
    assert len(llm.requests) == 1


async def test_a_garbage_chunk_before_any_text_is_retried_like_a_5xx(
        llm: FakeOpenAI, openai_answerer: Callable[[], OpenAIAnswerer]) -> None:
    llm.inject(Fault(garbage_at_chunk=0), Fault(garbage_at_chunk=0))
    deltas = Deltas()
    answer = await openai_answerer().answer(request(), deltas)
    assert not answer.interrupted and answer.text.startswith("Answer to")
    assert "".join(deltas) == answer.text and len(llm.requests) == 3


async def test_a_garbage_chunk_mid_answer_ends_it_as_interrupted(
        llm: FakeOpenAI, openai_answerer: Callable[[], OpenAIAnswerer]) -> None:
    llm.inject(Fault(garbage_at_chunk=3))
    deltas = Deltas()
    answer = await openai_answerer().answer(request(), deltas)
    assert answer.interrupted and answer.text == "".join(deltas) == "Answer to:"


async def test_garbage_on_every_attempt_falls_back_to_the_next_model(
        llm: FakeOpenAI, openai_answerer: Callable[[], OpenAIAnswerer]) -> None:
    llm.inject(*[Fault(garbage_at_chunk=0, model="primary")] * 2)
    answer = await openai_answerer().answer(
        request(model="primary", fallback_models=("backup",), max_attempts=2), Deltas())
    assert answer.usage.model == "backup" and not answer.interrupted


async def test_a_stream_that_ends_without_finish_reason_is_interrupted(
        llm: FakeOpenAI, openai_answerer: Callable[[], OpenAIAnswerer]) -> None:
    llm.inject(Fault(clean_cut_after_chunks=3))
    answer = await openai_answerer().answer(request(), Deltas())
    assert answer.interrupted and answer.text == "Answer to: What"
    llm.inject(Fault(clean_cut_after_chunks=0))
    retried = await openai_answerer().answer(request(), Deltas())
    assert not retried.interrupted and retried.text.startswith("Answer to")


async def test_one_answer_has_a_total_time_budget_across_attempts(
        llm: FakeOpenAI, openai_answerer: Callable[[], OpenAIAnswerer]) -> None:
    llm.delay_s = 5.0
    started = time.monotonic()
    with pytest.raises(AnswerUnavailable) as raised:
        await openai_answerer().answer(request(timeout_s=2.0, max_attempts=3, budget_s=1.0,
                                               fallback_models=("backup",)), Deltas())
    took = time.monotonic() - started
    assert 0.9 < took < 3.0, took  # without the budget: 3 attempts of 2 s, then backup
    assert "within 1s" in raised.value.reason


async def test_extractive_answerer_says_no_knowledge_is_loaded() -> None:
    deltas = Deltas()
    answer = await ExtractiveAnswerer().answer(request(), deltas)
    assert answer.text == NO_KNOWLEDGE == "".join(deltas)
    assert answer.usage.total_tokens == 0


async def test_server_sent_events_are_decoded_as_the_specification_says() -> None:
    """Comments and other fields are skipped, an event's data lines are joined with
    newlines, a blank line ends an event, and ``[DONE]`` ends the stream."""
    from core.llm.openai_chat import _events

    async def lines() -> AsyncIterator[str]:
        for line in (": keep-alive", "", "event: chunk", 'data: {"a":', 'data: 1}', "",
                     "id: 7", 'data:{"b": 2}', "", "", "data: [DONE]", "",
                     'data: {"after": "done"}', ""):
            yield line

    assert [event async for event in _events(lines())] == [{"a": 1}, {"b": 2}]


async def test_an_error_event_in_the_stream_is_retried_like_a_5xx(
        llm: FakeOpenAI, openai_answerer: Callable[[], OpenAIAnswerer]) -> None:
    llm.inject(Fault(error_at_chunk=0))
    deltas = Deltas()
    answer = await openai_answerer().answer(request(), deltas)
    assert not answer.interrupted and answer.text.startswith("Answer to")
    assert len(llm.requests) == 2
