"""The offline answerer reads like an answer: whole sentences from the best passages,
never a code or table fragment, 2-5 sentences with numbered citations, and follow-ups
only about the question's topic."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from adapters.memory import MemoryChannel
from core.engine.grounding import follow_ups
from core.knowledge.base import Passage
from core.knowledge.service import KnowledgeService
from core.llm.base import AnswerRequest
from core.llm.extractive import FOOTNOTE, NO_SOURCE, ExtractiveAnswerer
from tests.conftest import EngineKit, tenant

Build = Callable[..., Any]
ROOT = Path(__file__).resolve().parent.parent

# A chunk that starts inside a fenced block (its first fence closes it), as the chunker
# cuts long sections: the TOML before the fence must never be quoted.
INSIDE_CODE = '''icon_url = "https://acme.example/bot.png"
ip_per_minute = 30          # messages per minute from one IP address
```

Per-visitor limits are the tenant's `limits.user_per_minute`, the same as on every
channel. Each visitor (or identified user) is one user.'''
TABLE = '''| setting | default | meaning |
|---|---|---|
| `user_per_minute` | 20 | questions one user may ask a minute, in a token bucket |
| `tenant_per_minute` | 600 | questions the whole tenant'''
PROSE = ("## Rate limits\n\nEvery message takes a token from a per-tenant and a per-user "
         "token bucket, both or neither. A refused message gets a reply that says when to "
         "try again. See [the configuration](configuration.md) for the settings.")


def ask(question: str, *texts: str) -> AnswerRequest:
    passages = tuple(Passage(text=t, title=f"Doc {n}", source=f"docs/{n}.md", similarity=0.6)
                     for n, t in enumerate(texts, start=1))
    return AnswerRequest(system_prompt="", question=question, passages=passages,
                         knowledge_loaded=True)


def sentences(text: str) -> int:
    body = text.replace(FOOTNOTE, "")
    return len(re.findall(r"[.!?](?:\s*\[\d+\])*(?=\s|$)", body))


async def answer(request: AnswerRequest) -> tuple[str, list[str]]:
    deltas: list[str] = []

    async def on_delta(text: str) -> None:
        deltas.append(text)

    result = await ExtractiveAnswerer().answer(request, on_delta)
    assert "".join(deltas) == result.text
    return result.text, deltas


async def test_only_whole_statements_are_quoted_never_code_or_table_fragments() -> None:
    text, deltas = await answer(ask("How do rate limits work per user?",
                                    INSIDE_CODE, TABLE, PROSE))
    assert "```" not in text and "ip_per_minute" not in text and "icon_url" not in text
    assert text.count("`") % 2 == 0 and not any(line.count("|") >= 2
                                                 for line in text.splitlines())
    assert "questions the whole tenant" not in text  # the row the chunk cut in half
    assert "## " not in text and "(configuration.md)" not in text
    assert 2 <= sentences(text) <= 5 and len(deltas) >= 2
    assert text.endswith(FOOTNOTE)
    assert re.search(r"\[[123]\]", text)


async def test_a_whole_table_row_is_read_as_a_statement_with_its_citation() -> None:
    text, _ = await answer(ask("How many questions may one user ask a minute?", TABLE))
    assert "`user_per_minute`: 20; questions one user may ask a minute, in a token bucket. [1]" \
        in text


async def test_passages_of_nothing_but_code_give_no_source_rather_than_a_fragment() -> None:
    text, _ = await answer(ask("How do I configure it?", "```toml\nkey = 1\n```",
                               "| a | b |\n|---|---|"))
    assert text == NO_SOURCE


def passage(heading: str, similarity: float) -> Passage:
    return Passage(text="text", title="Guide", source="guide.md", headings=(heading,),
                   similarity=similarity)


def test_follow_ups_are_on_the_questions_topic_only() -> None:
    passages = [passage("Rate limits", 0.62), passage("Who is an admin", 0.31),
                passage("Limits per visitor", 0.35), passage("Token buckets", 0.58),
                passage("Open-loop load: `python -m benchmarks.load`", 0.60),
                passage("What is Switchboard?", 0.59)]
    suggested = follow_ups("How do rate limits work?", passages, limit=5)
    assert "Tell me more about Who is an admin" not in suggested  # unrelated, low
    assert "Tell me more about Limits per visitor" in suggested  # shares a word
    assert "Tell me more about Token buckets" in suggested  # close to the best
    assert "Tell me more about Open-loop load" in suggested  # code dropped
    assert "What is Switchboard?" in suggested  # a question heading, as it is
    assert all("`" not in s for s in suggested)
    assert "Tell me more about Rate limits" not in follow_ups(
        "Tell me more about rate limits", passages)


async def test_the_readme_question_is_answered_cleanly_from_the_docs(
        make_engine: Build, knowledge: KnowledgeService) -> None:
    """The README's example, over the project's own documents that hold it."""
    demo = tenant("demo", knowledge={"chunk_tokens": 150, "chunk_overlap": 30})
    files = [str(ROOT / "docs" / name) for name in ("architecture.md", "widget.md",
                                                     "configuration.md")]
    await knowledge.ingestor.ingest(demo, files, ROOT)
    kit: EngineKit = await make_engine(demo, knowledge=knowledge,
                                       answerer=ExtractiveAnswerer(
                                           knowledge.embedders.local()))
    reply = (await MemoryChannel(kit.engine, "demo").send("How do rate limits work?")).reply
    assert reply is not None and reply.kind == "answer"
    assert "token bucket" in reply.text and "```" not in reply.text
    assert reply.text.count("`") % 2 == 0 and 2 <= sentences(reply.text) <= 5
    assert reply.citations and all(c.source.startswith("docs/") for c in reply.citations)
    assert all("`" not in f for f in reply.follow_ups)


async def test_a_question_while_the_first_documents_load_says_so(
        make_engine: Build, knowledge: KnowledgeService) -> None:
    import asyncio
    folder = knowledge.root / "many"
    folder.mkdir()
    for n in range(200):
        (folder / f"policy-{n}.md").write_text(
            f"# Policy {n}\n\nRule {n}: requests are answered within {n % 5 + 1} days.\n")
    config = tenant("acme", knowledge={"sources": [{"path": "many/"}]})
    kit: EngineKit = await make_engine(config, knowledge=knowledge)
    channel = MemoryChannel(kit.engine, "acme")
    loading = asyncio.create_task(knowledge.ingest_configured(config, only_if_empty=True))
    while "acme" not in knowledge.loading and not loading.done():  # noqa: ASYNC110 - its state
        await asyncio.sleep(0)
    early = (await channel.send("How fast are requests answered?")).reply
    await loading
    later = (await channel.send("How fast are requests answered?", thread="t2")).reply
    assert early is not None and "still loading this workspace's documents" in early.text
    assert early.retry_after_s and early.kind == "apology"
    assert later is not None and later.kind == "answer" and later.citations
    assert "acme" not in knowledge.loading
