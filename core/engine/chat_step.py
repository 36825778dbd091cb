"""Answering a chat message: budget, retrieval, streaming the answer, citations."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from core.engine.context import Turn
from core.engine.deps import EngineDeps
from core.llm.base import AnswerRequest, AnswerUnavailable, ChatTurn
from core.observability import metrics
from core.replies import Citation, Reply, feedback_actions
from core.sessions.history import window

log = logging.getLogger("switchboard.engine")

APOLOGY = ("Sorry — I couldn't reach the language model just now, so I can't answer. "
           "Your message was saved; please try again in a minute.")
INTERRUPTED = "\n\n_(The answer was cut off by the model provider. Please ask again.)_"


def _budget_refusal(tenant_name: str, used: int, budget: int, now: datetime) -> Reply:
    resets = datetime(now.year + now.month // 12, now.month % 12 + 1, 1, tzinfo=UTC)
    return Reply(
        f"{tenant_name} has used its monthly AI budget ({used:,} of {budget:,} tokens), so I "
        f"can't write new answers until it resets on {resets:%B} 1. Commands still work; "
        "an admin can raise `llm.monthly_token_budget`.", kind="refusal")


async def answer_chat(turn: Turn, deps: EngineDeps) -> Reply:
    tenant = turn.require_tenant()
    now = datetime.now(UTC)
    if deps.answerer.metered:
        used = await deps.usage.tokens_used(tenant.id, now)
        if used >= tenant.llm.monthly_token_budget:
            metrics.BUDGET_REFUSED.labels(tenant.id).inc()
            turn.outcome = "budget_exhausted"
            log.warning("monthly token budget exhausted", extra={"used": used})
            return _budget_refusal(tenant.name, used, tenant.llm.monthly_token_budget, now)
    question = turn.message.text.strip()
    loaded = await deps.retriever.has_knowledge(tenant)
    passages = await deps.retriever.search(tenant, question) if loaded else []
    history = window(turn.history, tenant.sessions.history_tokens)
    request = AnswerRequest(
        system_prompt=tenant.persona.system_prompt, question=question,
        history=tuple(ChatTurn(m.role, m.text) for m in history),
        passages=tuple(passages), knowledge_loaded=loaded,
        model=tenant.llm.model, fallback_models=tuple(tenant.llm.fallback_models),
        max_output_tokens=tenant.llm.max_output_tokens, temperature=tenant.llm.temperature,
        timeout_s=tenant.llm.timeout_s, max_attempts=tenant.llm.max_attempts,
        prices=(tenant.llm.price_input_per_mtok, tenant.llm.price_output_per_mtok),
    )
    try:
        answer = await deps.answerer.answer(request, turn.sink.delta)
    except AnswerUnavailable as exc:
        turn.outcome = "llm_error"
        log.error("no answer from the language model: %s", exc.reason)
        return Reply(APOLOGY, kind="apology")
    turn.usage = answer.usage
    citations = tuple(
        Citation(number=i, title=p.title or p.source, source=p.source, url=p.url,
                 snippet=p.text[:240])
        for i, p in enumerate(passages, start=1))
    if answer.interrupted:
        turn.outcome = "llm_error"
        return Reply(answer.text + INTERRUPTED, kind="apology", citations=citations,
                     turn_id=turn.turn_id, model=answer.usage.model)
    return Reply(answer.text, kind="answer", citations=citations,
                 actions=feedback_actions(turn.turn_id), turn_id=turn.turn_id,
                 model=answer.usage.model)
