"""The engine: one explicit, ordered pipeline per inbound message.

resolve tenant → screen the input (``core/safety``) → journal the intake → drop
duplicates → rate limits → conversation lock → load session → route → respond
(streaming) → persist the turn → account usage.

Each stage is timed (``switchboard_stage_seconds``) and the turn ends with one log line
carrying request_id, tenant, channel, the outcome and every stage's duration.

No accepted message is lost (docs/reliability.md). It is journaled locally before any
stage that can fail; Redis and MongoDB outages degrade a turn rather than fail it; a
chat turn is stored even when the model or a stage fails (with its apology), and when
MongoDB will not take it the turn stays in the journal until ``Recovery`` writes it
back. A process that dies mid-turn replays the journaled message on its next start.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from core.commands.registry import is_command
from core.engine import guards
from core.engine.chat_step import answer_chat
from core.engine.commands_step import run_command
from core.engine.context import Outcome, Stop, Turn
from core.engine.deps import EngineDeps
from core.intake.codec import stored_to_dict
from core.replies import Reply
from core.safety.input_filter import screen_input
from core.sessions.models import StoredMessage
from core.sessions.store import StoreUnavailable
from core.turns.events import FinalReply, TurnStarted

__all__ = ["PIPELINE", "SORRY", "TurnResult", "persist_turn"]

log = logging.getLogger("switchboard.engine")

SORRY = ("Sorry — something went wrong on my side and I couldn't answer. "
         "The error was logged; please try again in a minute.")

Step = Callable[[Turn, EngineDeps], Awaitable[Stop | None]]


@dataclass(frozen=True, slots=True)
class TurnResult:
    outcome: Outcome
    reply: Reply | None
    turn_id: str
    tenant: str


EMPTY = "I didn't get a question there. Type what you'd like to know and I'll answer."


async def route(turn: Turn, deps: EngineDeps) -> Stop | None:
    message = turn.message
    if message.command is not None:
        turn.route = "command"
        return None
    if not message.text.strip() and not message.attachments:
        return Stop("empty", Reply(EMPTY, kind="refusal", ephemeral=True))
    turn.route = "command" if is_command(message.text) else "chat"
    return None


async def respond(turn: Turn, deps: EngineDeps) -> Stop | None:
    await turn.out.emit(TurnStarted(turn.turn_id, turn.message))
    if turn.route == "chat":
        turn.reply = await answer_chat(turn, deps)
    else:
        turn.reply = await run_command(turn, deps)
        turn.outcome = "command"
    receipt = await turn.out.emit(FinalReply(turn.turn_id, turn.reply))
    if receipt.delivered is not None:  # a stage filtered it: store what was shown
        turn.reply = receipt.delivered
    return None


async def persist_turn(turn: Turn, deps: EngineDeps) -> Stop | None:
    if turn.route != "chat" or turn.reply is None:
        return None
    messages = _turn_messages(turn)
    try:
        await deps.sessions.append(messages)
    except StoreUnavailable as exc:
        log.error("the turn could not be stored (%s); journaled for write-back", exc)
        await deps.journal.unstored(turn.turn_id, [stored_to_dict(m) for m in messages])
        turn.write_back = True
    turn.stored = True
    return None


def _turn_messages(turn: Turn) -> list[StoredMessage]:
    tenant, key, message = turn.require_tenant(), turn.require_key(), turn.message
    assert turn.reply is not None
    now = datetime.now(UTC)
    expires = now + timedelta(days=tenant.sessions.retention_days)
    reply = turn.reply
    return [
        StoredMessage(key, "user", message.text, message.author.id, turn.turn_id,
                      message.received_at, expires, message.platform_message_id,
                      message.author.display_name),
        StoredMessage(key, "assistant", reply.text, message.author.id, turn.turn_id,
                      max(now, message.received_at + timedelta(milliseconds=1)), expires,
                      turn.out.reply_id, kind=reply.kind, usage=turn.usage, trace=turn.trace,
                      citations=tuple({"title": c.title, "source": c.source, "url": c.url,
                                       "chunk_id": c.chunk_id} for c in reply.citations),
                      follow_ups=reply.follow_ups, grounding=reply.grounding,
                      confidence=reply.confidence),
    ]


async def account_usage(turn: Turn, deps: EngineDeps) -> Stop | None:
    if turn.usage.total_tokens:
        try:
            await deps.usage.record(turn.require_tenant().id, turn.usage, datetime.now(UTC))
        except Exception:
            log.exception("usage could not be recorded for this turn")
    return None


PIPELINE: tuple[tuple[str, Step], ...] = (
    ("resolve_tenant", guards.resolve_tenant),
    ("screen_input", screen_input),
    ("intake", guards.record_intake),
    ("dedupe", guards.drop_duplicate),
    ("rate_limit", guards.apply_rate_limits),
    ("lock", guards.hold_conversation),
    ("load_session", guards.load_session),
    ("route", route),
    ("respond", respond),
    ("persist", persist_turn),
    ("usage", account_usage),
)
