"""Answering a chat message: the grounded-answer flow (``grounded.py``), with the tools
this user may run, as a reply."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from core.commands.executor import Caller
from core.engine.agent import Toolbox
from core.engine.commands_step import executor
from core.engine.confirmations import Confirmations, buttons, prompt_line
from core.engine.context import Turn
from core.engine.deps import EngineDeps
from core.engine.grounded import grounded_answer
from core.engine.permissions import is_admin
from core.llm.base import ChatTurn
from core.replies import Reply, feedback_actions
from core.sessions.history import window
from core.sessions.models import StoredMessage
from core.turns.coalesce import DeltaCoalescer
from core.turns.events import TextDelta, ToolCalled, ToolReturned
from observability import metrics

log = logging.getLogger("switchboard.engine")

APOLOGY = ("Sorry — I couldn't reach the language model just now, so I can't answer. "
           "Your message was saved; please try again in a minute.")
NO_KNOWLEDGE_BASE = ("Sorry — I can't reach this workspace's knowledge base right now, so I "
                     "can't answer from its documents. The problem was logged; please try "
                     "again in a minute.")
INTERRUPTED = "\n\n_(The answer was cut off by the model provider. Please ask again.)_"


def _loading(done: int) -> str:
    so_far = f" ({done} loaded so far)" if done else ""
    return (f"I'm still loading this workspace's documents{so_far}, so I can't answer "
            "from them yet. Please ask again in a few seconds.")


def _budget_refusal(tenant_name: str, used: int, budget: int, now: datetime) -> Reply:
    resets = datetime(now.year + now.month // 12, now.month % 12 + 1, 1, tzinfo=UTC)
    return Reply(
        f"{tenant_name} has used its monthly AI budget ({used:,} of {budget:,} tokens), so I "
        f"can't write new answers until it resets on {resets:%B} 1. Commands still work; "
        "an admin can raise `llm.monthly_token_budget`.", kind="refusal")


async def answer_chat(turn: Turn, deps: EngineDeps) -> Reply:
    """The chat turn's reply, from the shared grounded-answer flow, its text streamed as
    ``TextDelta`` events merged to a readable pace (``core/turns/coalesce.py``)."""
    tenant = turn.require_tenant()

    async def send(text: str) -> None:
        await turn.out.emit(TextDelta(turn.turn_id, text))

    deltas = DeltaCoalescer(send)
    history = window(turn.history, tenant.sessions.history_tokens)
    box = _toolbox(turn, deps, deltas)
    try:
        result = await grounded_answer(deps, tenant, turn.message.text.strip(),
                                       history=[_turn(m, turn.message.author.id)
                                                for m in history],
                                       on_delta=deltas.add, tools=box)
    finally:
        await deltas.close()
    turn.usage = result.usage
    turn.trace = result.trace
    if result.outcome == "budget_exhausted":
        turn.outcome = "budget_exhausted"
        log.warning("monthly token budget exhausted", extra={"used": result.detail})
        return _budget_refusal(tenant.name, result.budget_used,
                               tenant.llm.monthly_token_budget, datetime.now(UTC))
    if result.outcome == "knowledge_loading":
        turn.outcome = "busy"
        return Reply(_loading(result.documents_loaded), kind="apology", retry_after_s=10)
    if result.outcome == "knowledge_unavailable":
        turn.outcome = "error"
        return Reply(NO_KNOWLEDGE_BASE, kind="apology")
    if result.outcome == "llm_unavailable":
        turn.outcome = "llm_error"
        return Reply(APOLOGY, kind="apology")
    if result.outcome == "interrupted":
        turn.outcome = "llm_error"
        return Reply(result.text + INTERRUPTED, kind="apology", citations=result.citations,
                     turn_id=turn.turn_id, model=result.model, tools=result.tools)
    metrics.ANSWERS.labels(tenant.id, turn.message.channel, result.grounding).inc()
    text, actions = result.text, feedback_actions(turn.turn_id)
    if box is not None and box.parked:
        pending = box.parked[0]
        text += prompt_line(pending)
        actions = (*buttons(pending), *actions)
    return Reply(text, kind="answer", citations=result.citations,
                 follow_ups=result.follow_ups, confidence=result.confidence,
                 actions=actions, turn_id=turn.turn_id,
                 model=result.model, tools=result.tools, partial=result.partial,
                 grounding=result.grounding)


def _turn(message: StoredMessage, asking: str) -> ChatTurn:
    """History as the model sees it; someone else's message in a shared thread is quoted."""
    other = message.role == "user" and bool(message.user_id) and message.user_id != asking
    return ChatTurn(message.role, message.text,
                    speaker=(message.author_name or message.user_id) if other else "")


def _toolbox(turn: Turn, deps: EngineDeps, deltas: DeltaCoalescer) -> Toolbox | None:
    """The tools this user may have the model run here: from their role and the
    tenant's allow-list, never from anything in the conversation."""
    tenant = turn.require_tenant()
    if not deps.answerer.supports_tools or not tenant.tools.enabled:
        return None
    admin = is_admin(tenant, turn.message)
    offered = deps.commands.tools_for(tenant, admin)
    if not offered:
        return None

    async def emit(event: ToolCalled | ToolReturned) -> None:
        await deltas.flush()  # the text before the call reaches the channel first
        await turn.out.emit(event)

    return Toolbox(executor(deps), Caller(tenant, turn.message, turn.require_key(), admin,
                                          "tool"), offered, emit, turn.turn_id,
                   Confirmations(deps.state))
