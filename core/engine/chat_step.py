"""Answering a chat message: budget, retrieval, streaming the answer, citations."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from core.engine import grounding
from core.engine.context import Turn
from core.engine.deps import EngineDeps
from core.knowledge.answer_cache import CachedAnswer
from core.knowledge.index import KnowledgeIndexError
from core.llm.base import AnswerUnavailable, ChatTurn
from core.observability import metrics
from core.replies import Reply, feedback_actions
from core.sessions.history import window
from core.tenants.models import TenantConfig

log = logging.getLogger("switchboard.engine")

APOLOGY = ("Sorry — I couldn't reach the language model just now, so I can't answer. "
           "Your message was saved; please try again in a minute.")
NO_KNOWLEDGE_BASE = ("Sorry — I can't reach this workspace's knowledge base right now, so I "
                     "can't answer from its documents. The problem was logged; please try "
                     "again in a minute.")
INTERRUPTED = "\n\n_(The answer was cut off by the model provider. Please ask again.)_"


def _budget_refusal(tenant_name: str, used: int, budget: int, now: datetime) -> Reply:
    resets = datetime(now.year + now.month // 12, now.month % 12 + 1, 1, tzinfo=UTC)
    return Reply(
        f"{tenant_name} has used its monthly AI budget ({used:,} of {budget:,} tokens), so I "
        f"can't write new answers until it resets on {resets:%B} 1. Commands still work; "
        "an admin can raise `llm.monthly_token_budget`.", kind="refusal")


async def _budget_exhausted(turn: Turn, deps: EngineDeps, tenant: TenantConfig
                            ) -> Reply | None:
    now = datetime.now(UTC)
    used = await grounding.tokens_over_budget(deps, tenant, now)
    if used is None:
        return None
    metrics.BUDGET_REFUSED.labels(tenant.id).inc()
    turn.outcome = "budget_exhausted"
    log.warning("monthly token budget exhausted", extra={"used": used})
    return _budget_refusal(tenant.name, used, tenant.llm.monthly_token_budget, now)


async def answer_chat(turn: Turn, deps: EngineDeps) -> Reply:
    tenant = turn.require_tenant()
    question = turn.message.text.strip()
    history = window(turn.history, tenant.sessions.history_tokens)
    cache = deps.answer_cache if not history else None
    model = tenant.llm.model if deps.answerer.metered else deps.answerer.name
    if cache is not None:
        hit = await cache.get(tenant.id, model, question)
        if hit is not None:
            await turn.sink.delta(hit.text)
            return Reply(hit.text, citations=hit.citations, follow_ups=hit.follow_ups,
                         confidence=hit.confidence, actions=feedback_actions(turn.turn_id),
                         turn_id=turn.turn_id, model=model)
    refusal = await _budget_exhausted(turn, deps, tenant)
    if refusal is not None:
        return refusal
    try:
        loaded = await deps.retriever.has_knowledge(tenant)
        passages = await deps.retriever.search(
            tenant, question, [(m.role, m.text) for m in history]) if loaded else []
    except KnowledgeIndexError as exc:
        turn.outcome = "error"
        log.error("knowledge base unavailable: %s", exc)
        return Reply(NO_KNOWLEDGE_BASE, kind="apology")
    request = grounding.answer_request(tenant, question, passages, loaded,
                                       [ChatTurn(m.role, m.text) for m in history])
    try:
        answer = await deps.answerer.answer(request, turn.sink.delta)
    except AnswerUnavailable as exc:
        turn.outcome = "llm_error"
        log.error("no answer from the language model: %s", exc.reason)
        return Reply(APOLOGY, kind="apology")
    turn.usage = answer.usage
    cites = grounding.citations(answer.text, passages) if passages else ()
    confidence = grounding.confidence(passages, tenant.knowledge.score_threshold)
    follow_ups = grounding.follow_ups(question, passages)
    if answer.interrupted:
        turn.outcome = "llm_error"
        return Reply(answer.text + INTERRUPTED, kind="apology", citations=cites,
                     turn_id=turn.turn_id, model=answer.usage.model)
    if cache is not None and passages:
        await cache.put(tenant.id, model, question,
                        CachedAnswer(answer.text, cites, follow_ups, confidence))
    return Reply(answer.text, kind="answer", citations=cites, follow_ups=follow_ups,
                 confidence=confidence if loaded else None,
                 actions=feedback_actions(turn.turn_id), turn_id=turn.turn_id,
                 model=answer.usage.model)
