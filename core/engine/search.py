"""A grounded answer without a conversation: the admin API's search endpoint.

Same budget, retrieval, answerer, citations and usage accounting as a chat turn, minus
the session: nothing is stored but the usage.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from core.engine import grounding
from core.engine.deps import EngineDeps
from core.knowledge.base import Passage, SearchFilters
from core.llm.base import AnswerUnavailable
from core.replies import Citation
from core.tenants.models import TenantConfig


@dataclass(frozen=True, slots=True)
class SearchAnswer:
    answer: str
    citations: tuple[Citation, ...]
    passages: tuple[Passage, ...]
    confidence: float
    follow_ups: tuple[str, ...]
    refused: str = ""


async def _ignore(_: str) -> None:
    return None


async def search_and_answer(deps: EngineDeps, tenant: TenantConfig, query: str,
                            filters: SearchFilters | None = None,
                            top_k: int | None = None) -> SearchAnswer:
    now = datetime.now(UTC)
    if await grounding.tokens_over_budget(deps, tenant, now) is not None:
        return SearchAnswer("", (), (), 0.0, (), refused="monthly token budget exhausted")
    loaded = await deps.retriever.has_knowledge(tenant)
    passages = (await deps.retriever.search(tenant, query, (), filters, top_k=top_k)
                if loaded else [])
    request = grounding.answer_request(tenant, query, passages, loaded)
    try:
        answer = await deps.answerer.answer(request, _ignore)
    except AnswerUnavailable as exc:
        return SearchAnswer("", (), tuple(passages), 0.0, (), refused=exc.reason)
    await deps.usage.record(tenant.id, answer.usage, now)
    return SearchAnswer(
        answer.text, grounding.citations(answer.text, passages) if passages else (),
        tuple(passages), grounding.confidence(passages, tenant.knowledge.score_threshold),
        grounding.follow_ups(query, passages))
