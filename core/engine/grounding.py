"""What an answer is grounded in: citations, a confidence, and follow-up suggestions."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime

from core.engine.deps import EngineDeps
from core.knowledge.base import Passage
from core.llm.base import AnswerRequest, ChatTurn
from core.llm.extractive import terms
from core.replies import Citation
from core.safety.canary import canary_for
from core.tenants.models import TenantConfig

_MARKER = re.compile(r"\[(\d{1,2})\]")


def drop_unknown_markers(text: str, count: int) -> str:
    """``[n]`` markers that name no passage given (a model's invention, or an attack's)
    removed, so every marker left points at a real source."""
    return _MARKER.sub(lambda m: m.group(0) if 1 <= int(m.group(1)) <= count else "", text)


def cites_any(text: str, count: int) -> bool:
    return any(1 <= int(m.group(1)) <= count for m in _MARKER.finditer(text))


def cited(text: str, passages: list[Passage]) -> list[int]:
    """Passage numbers the answer cites, in order of first mention; all if it cites none."""
    numbers: list[int] = []
    for match in _MARKER.finditer(text):
        n = int(match.group(1))
        if 1 <= n <= len(passages) and n not in numbers:
            numbers.append(n)
    return numbers or list(range(1, len(passages) + 1))


def citations(text: str, passages: list[Passage]) -> tuple[Citation, ...]:
    out = []
    for n in cited(text, passages):
        p = passages[n - 1]
        title = " > ".join([p.title, *p.headings[-1:]]) if p.headings and \
            p.headings[-1] != p.title else p.title
        title = title or p.source
        url = p.url
        if p.page:  # a PDF: say which page, and open the link there
            title = f"{title}, page {p.page}"
            url = f"{url}#page={p.page}" if url and "#" not in url else url
        out.append(Citation(number=n, title=title, source=p.source, url=url,
                            snippet=" ".join(p.text.split())[:240], chunk_id=p.chunk_id))
    return tuple(out)


def confidence(passages: list[Passage], threshold: float) -> float:
    """0 with no passage; rises with the best passage's similarity above the threshold."""
    if not passages:
        return 0.0
    best = max(p.similarity for p in passages)
    span = max(0.75 - threshold, 1e-6)
    return round(min(1.0, max(0.05, (best - threshold) / span)), 2)


_CODE = re.compile(r"`[^`]*`")
RELATED_MARGIN = 0.08
"""A passage whose similarity to the question is within this of the best one is on
the question's topic; its heading may be suggested even without a shared word."""


def _topic(passage: Passage) -> str:
    """The passage's heading as a reader would say it: code spans and a trailing colon
    dropped; "" when nothing readable is left or it is too long to suggest."""
    topic = passage.headings[-1] if passage.headings else passage.title
    topic = " ".join(_CODE.sub("", topic).replace("()", "").split()).rstrip(":;,— -")
    return topic if 3 <= len(topic) <= 60 else ""


def follow_ups(question: str, passages: list[Passage], limit: int = 3) -> tuple[str, ...]:
    """Questions about the sections the answer's passages come from, for those on the
    question's topic: close to the best passage's similarity, or sharing a word with
    the question. A heading that is a question is suggested as it is."""
    if not passages:
        return ()
    best = max(p.similarity for p in passages)
    asked = terms(question)
    seen = {question.lower().strip(" ?").removeprefix("tell me more about ")}
    out: list[str] = []
    for p in passages[1:] + passages[:1]:
        topic = _topic(p)
        if not topic or topic.lower().strip(" ?") in seen:
            continue
        if p.similarity < best - RELATED_MARGIN and not terms(topic) & asked:
            continue
        seen.add(topic.lower().strip(" ?"))
        out.append(topic if topic.endswith("?") else f"Tell me more about {topic}")
        if len(out) == limit:
            break
    return tuple(out)


def answer_request(tenant: TenantConfig, question: str, passages: Sequence[Passage],
                   loaded: bool, history: Sequence[ChatTurn] = ()) -> AnswerRequest:
    """What the answerer is asked, from the tenant's persona and model settings."""
    llm = tenant.llm
    return AnswerRequest(
        system_prompt=tenant.persona.system_prompt, question=question,
        history=tuple(history), passages=tuple(passages), knowledge_loaded=loaded,
        model=llm.model, fallback_models=tuple(llm.fallback_models),
        max_output_tokens=llm.max_output_tokens, temperature=llm.temperature,
        timeout_s=llm.timeout_s, max_attempts=llm.max_attempts,
        budget_s=llm.answer_budget_s,
        prices=(llm.price_input_per_mtok, llm.price_output_per_mtok),
        canary=canary_for(tenant.id))


async def tokens_over_budget(deps: EngineDeps, tenant: TenantConfig, now: datetime
                             ) -> int | None:
    """Tokens used this month when they reach the tenant's budget, else None."""
    if not deps.answerer.metered:
        return None
    used = await deps.usage.tokens_used(tenant.id, now)
    return used if used >= tenant.llm.monthly_token_budget else None
