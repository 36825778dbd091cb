"""The one grounded-answer flow: budget, retrieval, the answerer, citations, the cache.

A chat turn and the admin API's search both answer a question from the tenant's
documents; they differ only in what surrounds the answer (a conversation's history and
a streamed reply, or neither). Both call ``grounded_answer``, so the budget check, an
unreachable knowledge index, the answer cache, a model that gives no answer and a
stream cut mid-answer are each handled once. The outcome says which of those happened;
callers turn it into a reply of their own kind and account the usage.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Literal

from core.engine import grounding
from core.engine.agent import Toolbox, run_agent
from core.engine.deps import EngineDeps
from core.knowledge.answer_cache import CachedAnswer
from core.knowledge.base import Passage, SearchFilters
from core.knowledge.index import KnowledgeIndexError
from core.llm.base import AnswerUnavailable, ChatTurn, DeltaCallback
from core.llm.extractive import NO_SOURCE
from core.replies import Citation, ToolUse
from core.sessions.models import TurnUsage
from core.tenants.models import TenantConfig
from observability import metrics

log = logging.getLogger("switchboard.engine")

GroundedOutcome = Literal["answered", "cached", "budget_exhausted", "knowledge_unavailable",
                          "knowledge_loading", "llm_unavailable", "interrupted"]


@dataclass(frozen=True, slots=True)
class GroundedAnswer:
    outcome: GroundedOutcome
    text: str = ""
    citations: tuple[Citation, ...] = ()
    passages: tuple[Passage, ...] = ()
    confidence: float | None = None
    follow_ups: tuple[str, ...] = ()
    usage: TurnUsage = field(default_factory=TurnUsage)
    model: str = ""
    detail: str = ""
    """Why there is no answer (the budget used, the index or model error), for logs."""
    loaded: bool = False
    budget_used: int = 0
    documents_loaded: int = 0
    """While the tenant's first ingestion runs ("knowledge_loading"): documents done."""
    """Tokens used this month, when the budget is exhausted."""
    tools: tuple[ToolUse, ...] = ()
    trace: dict[str, Any] | None = None
    partial: bool = False
    """The agent loop stopped at a bound: the best answer so far."""

    @property
    def grounding(self) -> Literal["cited", "no_source", "uncited"]:
        """How the answer stands on the documents, for operators (a knowledge gap is a
        ``no_source``: nothing was found, or nothing that answers)."""
        if self.text.strip() == NO_SOURCE or (self.loaded and not self.passages
                                              and not self.citations):
            return "no_source"
        if self.outcome == "cached" or grounding.cites_any(self.text, len(self.passages)):
            return "cited"  # (a cached answer was stored only with its sources)
        return "uncited"


async def _ignore(_: str) -> None:
    return None


async def grounded_answer(deps: EngineDeps, tenant: TenantConfig, question: str, *,
                          history: Sequence[ChatTurn] = (),
                          on_delta: DeltaCallback = _ignore,
                          filters: SearchFilters | None = None, top_k: int | None = None,
                          use_cache: bool = True,
                          tools: Toolbox | None = None) -> GroundedAnswer:
    """Answer ``question`` from the tenant's knowledge, streaming text to ``on_delta``.

    With ``tools`` (a chat turn whose model supports them, and at least one tool
    offered) the answer comes from the bounded agent loop (``agent.py``); passages its
    searches find become citable sources too.

    The cache is used only for a question with no history (and by callers that do not
    narrow the search); only complete answers with passages, made without tools, are
    cached.
    """
    model = tenant.llm.model if deps.answerer.metered else deps.answerer.name
    cache = deps.answer_cache if use_cache and not history and filters is None \
        and top_k is None else None
    if cache is not None:
        hit = await cache.get(tenant.id, model, question)
        if hit is not None:
            await on_delta(hit.text)
            return GroundedAnswer("cached", hit.text, hit.citations, (), hit.confidence,
                                  hit.follow_ups, model=model, loaded=True)
    used = await _tokens_over_budget(deps, tenant)
    if used is not None:
        metrics.BUDGET_REFUSED.labels(tenant.id).inc()
        return GroundedAnswer("budget_exhausted", detail=f"{used:,} tokens used", model=model,
                              budget_used=used)
    loading = deps.knowledge.loading.get(tenant.id) if deps.knowledge is not None else None
    if loading is not None:
        return GroundedAnswer("knowledge_loading", detail=f"{loading} documents loaded so far",
                              model=model, documents_loaded=loading)
    try:
        loaded = await deps.retriever.has_knowledge(tenant)
        passages = await deps.retriever.search(
            tenant, question, [(t.role, t.content) for t in history], filters,
            top_k=top_k) if loaded else []
    except KnowledgeIndexError as exc:
        log.error("knowledge base unavailable: %s", exc)
        return GroundedAnswer("knowledge_unavailable", detail=str(exc), model=model)
    if tenant.safety.grounded_only and not passages and (tools is None or not tools.offered):
        # Nothing to ground an answer in, and no tool that could find something: the
        # model is not asked at all.
        return GroundedAnswer("answered", NO_SOURCE, (), (), 0.0 if loaded else None,
                              model=model, loaded=loaded)
    request = grounding.answer_request(tenant, question, passages, loaded, history)
    agent = None
    try:
        if tools is not None and tools.offered and deps.answerer.supports_tools:
            agent = await run_agent(deps.answerer, request, passages, tools, on_delta)
            answer, passages = agent.answer, agent.passages
        else:
            answer = await deps.answerer.answer(request, on_delta)
    except AnswerUnavailable as exc:
        log.error("no answer from the language model: %s", exc.reason)
        return GroundedAnswer("llm_unavailable", passages=tuple(passages), detail=exc.reason,
                              model=model, loaded=loaded)
    if passages or tenant.safety.grounded_only:
        text = grounding.drop_unknown_markers(answer.text, len(passages))
        if text != answer.text:
            answer = replace(answer, text=text)
    if tenant.safety.grounded_only and not answer.interrupted and (
            not passages or not grounding.cites_any(answer.text, len(passages))):
        metrics.SAFETY_EVENTS.labels(tenant.id, "", "ungrounded", "replaced").inc()
        return GroundedAnswer("answered", NO_SOURCE, (), tuple(passages), 0.0, (),
                              answer.usage, answer.usage.model, loaded=loaded)
    cites = grounding.citations(answer.text, passages) if passages else ()
    if deps.source_link is not None:  # every cited file opens somewhere
        link = deps.source_link
        cites = tuple(replace(c, url=link(tenant.id, c.chunk_id))
                      if not c.url and c.chunk_id else c for c in cites)
    confidence = grounding.confidence(passages, tenant.knowledge.score_threshold)
    follow_ups = grounding.follow_ups(question, passages)
    tools_used = tuple(agent.tools) if agent is not None else ()
    trace = agent.trace if agent is not None and agent.tools else None
    if answer.interrupted:
        return GroundedAnswer("interrupted", answer.text, cites, tuple(passages),
                              usage=answer.usage, model=answer.usage.model,
                              detail="the stream was cut off", loaded=loaded, tools=tools_used,
                              trace=trace)
    partial = agent is not None and agent.partial
    if cache is not None and passages and not tools_used and not partial:
        await cache.put(tenant.id, model, question,
                        CachedAnswer(answer.text, cites, follow_ups, confidence))
    return GroundedAnswer("answered", answer.text, cites, tuple(passages),
                          confidence if loaded else None, follow_ups, answer.usage,
                          answer.usage.model, loaded=loaded, tools=tools_used, trace=trace,
                          partial=partial)


async def _tokens_over_budget(deps: EngineDeps, tenant: TenantConfig) -> int | None:
    """Tokens used this month when they reach the budget. A budget that cannot be read
    (both stores down) does not stop the answer: it is logged and counted as not
    exhausted."""
    try:
        return await grounding.tokens_over_budget(deps, tenant, datetime.now(UTC))
    except Exception as exc:
        log.warning("the token budget could not be checked (%s: %s); answering",
                    type(exc).__name__, exc)
        return None
