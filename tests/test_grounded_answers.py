"""Chat answers grounded in tenant knowledge: citations, honesty, cache, commands."""

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
ACME = tenant("acme", knowledge={"chunk_tokens": 120, "chunk_overlap": 20})
GLOBEX = tenant("globex")


async def load(knowledge: KnowledgeService, config: Any = ACME) -> None:
    folder = write_corpus(knowledge.root / "kb")
    await knowledge.ingestor.ingest(config, [str(folder)], knowledge.root)


async def test_offline_answer_quotes_and_cites_the_source(
        make_engine: Build, knowledge: KnowledgeService) -> None:
    await load(knowledge)
    kit: EngineKit = await make_engine(ACME, knowledge=knowledge)
    reply = (await MemoryChannel(kit.engine, "acme").send(
        "How long do approved refunds take?")).reply
    assert reply is not None and "5 business days" in reply.text and "[1]" in reply.text
    assert reply.citations[0].source == "kb/refunds.md"
    assert reply.citations[0].title == "Refund policy > Processing time"
    assert reply.confidence is not None and reply.confidence > 0
    assert reply.follow_ups


async def test_no_source_is_said_honestly(make_engine: Build,
                                          knowledge: KnowledgeService) -> None:
    await load(knowledge)
    kit: EngineKit = await make_engine(ACME, knowledge=knowledge)
    reply = (await MemoryChannel(kit.engine, "acme").send("Who won the 1998 world cup?")).reply
    assert reply is not None and reply.text == NO_SOURCE and reply.citations == ()
    assert reply.confidence == 0


async def test_llm_prompt_numbers_passages_and_cited_ones_come_back(
        make_engine: Build, knowledge: KnowledgeService, llm: FakeOpenAI,
        openai_answerer: Callable[[], OpenAIAnswerer]) -> None:
    await load(knowledge)
    kit: EngineKit = await make_engine(ACME, knowledge=knowledge, answerer=openai_answerer())
    llm.answer_prefix = "Per [1], the answer to"
    reply = (await MemoryChannel(kit.engine, "acme").send("Which carrier ships to Asia?")).reply
    system = llm.requests[0]["messages"][0]["content"]
    assert '<source n="1" title="Shipping guide">' in system and "Pacific Express" in system
    assert reply is not None and [c.number for c in reply.citations] == [1]


async def test_answer_cache_serves_repeat_questions_per_tenant_only(
        make_engine: Build, knowledge: KnowledgeService, llm: FakeOpenAI,
        openai_answerer: Callable[[], OpenAIAnswerer]) -> None:
    await load(knowledge)
    await load(knowledge, GLOBEX)
    kit: EngineKit = await make_engine(ACME, GLOBEX, knowledge=knowledge,
                                       answerer=openai_answerer())
    acme = MemoryChannel(kit.engine, "acme")
    first = await acme.send("Which carrier ships to Asia?", thread="a")
    again = await acme.send("which carrier ships to asia", thread="b")
    assert again.text == first.text and len(llm.requests) == 1  # served from cache
    llm.answer_prefix = "Globex says"
    other = await MemoryChannel(kit.engine, "globex").send("Which carrier ships to Asia?",
                                                          thread="a")
    assert other.text.startswith("Globex says") and len(llm.requests) == 2


async def test_answer_cache_is_never_stale_after_reingest(
        make_engine: Build, knowledge: KnowledgeService, llm: FakeOpenAI,
        openai_answerer: Callable[[], OpenAIAnswerer]) -> None:
    await load(knowledge)
    kit: EngineKit = await make_engine(ACME, knowledge=knowledge, answerer=openai_answerer())
    acme = MemoryChannel(kit.engine, "acme")
    await acme.send("When is the support desk open?", thread="a")
    (knowledge.root / "kb" / "notes.txt").write_text("Office hours\n\nThe support desk is "
                                                     "open around the clock now.\n")
    await knowledge.ingestor.ingest(ACME, [str(knowledge.root / "kb")], knowledge.root)
    await acme.send("When is the support desk open?", thread="b")
    assert len(llm.requests) == 2
    assert "around the clock" in llm.requests[1]["messages"][0]["content"]


async def test_sources_and_ingest_commands(make_engine: Build,
                                           knowledge: KnowledgeService) -> None:
    await load(knowledge)
    kit: EngineKit = await make_engine(ACME, knowledge=knowledge)
    channel = MemoryChannel(kit.engine, "acme")
    listing = (await channel.send("/sources")).text
    assert "5 documents" in listing and "Refund policy" in listing
    refused = await channel.send("/ingest https://example.com/doc")
    assert refused.reply is not None and refused.reply.kind == "refusal"
    blocked = await channel.send("/ingest http://169.254.169.254/latest",
                                 roles=frozenset({"platform_admin"}))
    assert "Could not ingest" in blocked.text and "refused" in blocked.text
    audit = await kit.deps.audit.recent("acme", 10)
    assert [(r.command, r.outcome) for r in audit] == [("ingest", "ok"), ("ingest", "refused")]


async def test_unreachable_knowledge_store_gives_a_specific_apology(
        make_engine: Build, knowledge: KnowledgeService, tmp_path: Any) -> None:
    from core.knowledge.index import QdrantIndex
    from core.knowledge.service import KnowledgeService as Service
    await load(knowledge)
    holder = QdrantIndex(path=tmp_path / "qdrant")
    await holder.ping()  # another "process" holds the local store
    blocked = Service(QdrantIndex(path=tmp_path / "qdrant"), knowledge.catalog,
                      knowledge.embedders, None, knowledge.root)
    kit: EngineKit = await make_engine(ACME, knowledge=blocked)
    delivery = await MemoryChannel(kit.engine, "acme").send("How long do refunds take?")
    await holder.close()
    assert delivery.result.outcome == "error"
    assert delivery.reply is not None and "can't reach this workspace's knowledge base" \
        in delivery.text


async def test_feedback_is_stored_with_the_turns_sources_for_its_tenant_only(
        make_engine: Build, knowledge: KnowledgeService) -> None:
    await load(knowledge)
    kit: EngineKit = await make_engine(ACME, GLOBEX, knowledge=knowledge)
    acme = MemoryChannel(kit.engine, "acme")
    answer = await acme.send("How long do approved refunds take?")
    turn = answer.result.turn_id
    assert await kit.engine.record_feedback(acme.message(""), turn, "up")
    globex = MemoryChannel(kit.engine, "globex")
    assert not await kit.engine.record_feedback(globex.message(""), turn, "down")
    assert kit.deps.feedback is not None
    [stored] = await kit.deps.feedback.for_turn("acme", turn)
    assert stored["rating"] == "up" and stored["user_id"] == "u1"
    cited = stored["citations"]
    assert isinstance(cited, list) and cited[0]["source"] == "kb/refunds.md"
    assert cited[0]["chunk_id"]
    assert await kit.deps.feedback.for_turn("globex", turn) == []
