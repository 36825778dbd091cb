"""A grounded answer without a conversation: the admin API's search endpoint.

The same grounded-answer flow as a chat turn (``grounded.py``), minus the session and
the answer cache (a search may be narrowed by filters): nothing is stored but the usage.
A search that gets no complete answer is refused with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from core.engine.deps import EngineDeps
from core.engine.grounded import grounded_answer
from core.knowledge.base import Passage, SearchFilters
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


REFUSALS = {"budget_exhausted": "monthly token budget exhausted",
            "knowledge_unavailable": "the knowledge base is unreachable",
            "knowledge_loading": "the knowledge base is still loading its first documents",
            "interrupted": "the model's answer was cut off"}


async def search_and_answer(deps: EngineDeps, tenant: TenantConfig, query: str,
                            filters: SearchFilters | None = None,
                            top_k: int | None = None) -> SearchAnswer:
    result = await grounded_answer(deps, tenant, query, filters=filters, top_k=top_k,
                                   use_cache=False)
    if result.usage.total_tokens:
        await deps.usage.record(tenant.id, result.usage, datetime.now(UTC))
    if result.outcome not in ("answered", "cached"):
        return SearchAnswer("", (), result.passages, 0.0, (),
                            refused=REFUSALS.get(result.outcome, result.detail))
    return SearchAnswer(result.text, result.citations, result.passages,
                        result.confidence or 0.0, result.follow_ups)
