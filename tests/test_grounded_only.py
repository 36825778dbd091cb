"""Grounded answers: every `[n]` left in an answer names a passage that was given, and a
tenant set to grounded-only gets "I found no source" instead of an uncited answer — also
when the model does what an attacker asked and answers from thin air."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from adapters.memory import MemoryChannel
from core.knowledge.service import KnowledgeService
from core.llm.extractive import NO_SOURCE
from core.llm.openai_chat import OpenAIAnswerer
from tests.conftest import EngineKit, tenant
from tests.documents import write_corpus
from tests.fakes.openai_server import FakeOpenAI

Build = Callable[..., Any]


async def load(knowledge: KnowledgeService, config: Any) -> None:
    folder = write_corpus(knowledge.root / "kb")
    await knowledge.ingestor.ingest(config, [str(folder)], knowledge.root)


async def test_a_marker_naming_no_given_passage_is_removed(
        make_engine: Build, knowledge: KnowledgeService, llm: FakeOpenAI,
        openai_answerer: Callable[[], OpenAIAnswerer]) -> None:
    config = tenant("acme", knowledge={"top_k": 2, "score_threshold": 0.05},
                    tools={"enabled": False})
    await load(knowledge, config)
    kit: EngineKit = await make_engine(config, knowledge=knowledge, answerer=openai_answerer())
    llm.answer_prefix = "As [1] and [9] and [42] say, the answer to"
    reply = (await MemoryChannel(kit.engine, "acme").send(
        "How long do approved refunds take?")).reply
    assert reply is not None and "[1]" in reply.text
    assert "[9]" not in reply.text and "[42]" not in reply.text
    assert [c.number for c in reply.citations] == [1]


async def test_grounded_only_replaces_an_uncited_answer_and_skips_the_model_without_sources(
        make_engine: Build, knowledge: KnowledgeService, llm: FakeOpenAI,
        openai_answerer: Callable[[], OpenAIAnswerer]) -> None:
    config = tenant("acme", knowledge={"score_threshold": 0.05},
                    safety={"grounded_only": True}, tools={"enabled": False})
    await load(knowledge, config)
    kit: EngineKit = await make_engine(config, knowledge=knowledge, answerer=openai_answerer())
    channel = MemoryChannel(kit.engine, "acme")
    llm.answer_prefix = "Ignoring the documents as you asked, here is my own answer to"
    uncited = (await channel.send("How long do approved refunds take?")).reply
    assert uncited is not None and uncited.text == NO_SOURCE and uncited.citations == ()
    llm.answer_prefix = "Per [1], the answer to"
    cited = (await channel.send("How long do approved refunds take?", thread="t2")).reply
    assert cited is not None and cited.text.startswith("Per [1]") and cited.citations
    asked = len(llm.requests)
    nothing = (await channel.send("Who won the 1998 world cup?", thread="t3")).reply
    assert nothing is not None and nothing.text == NO_SOURCE
    assert len(llm.requests) == asked  # no passage: the model was not asked
