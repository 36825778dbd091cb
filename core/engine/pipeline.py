"""The engine: one explicit, ordered pipeline per inbound message.

resolve tenant → journal the intake → drop duplicates → rate limits → conversation lock
→ load session → route → respond (streaming) → persist the turn → account usage.

Each stage is timed (``switchboard_stage_seconds``) and the turn ends with one log line
carrying request_id, tenant, channel, the outcome and every stage's duration.

No accepted message is lost (docs/reliability.md). It is journaled locally before any
stage that can fail; Redis and MongoDB outages degrade a turn rather than fail it; a
chat turn is stored even when the model or a stage fails (with its apology), and when
MongoDB will not take it the turn stays in the journal until ``Recovery`` writes it
back. A process that dies mid-turn replays the journaled message on its next start.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from core.commands.registry import is_command
from core.engine import guards
from core.engine.chat_step import answer_chat
from core.engine.commands_step import run_command
from core.engine.context import Outcome, Stop, Turn
from core.engine.deps import EngineDeps, EngineSettings
from core.feedback import FeedbackRecord, Rating
from core.intake.codec import stored_to_dict
from core.messages import InboundMessage
from core.observability import metrics
from core.observability.logging import log_context
from core.replies import Reply, ReplySink, delivered_id
from core.sessions.models import ConversationKey, StoredMessage
from core.sessions.store import StoreUnavailable
from core.state.base import LockTimeout
from core.tenants.registry import UnknownTenant

__all__ = ["Engine", "EngineDeps", "EngineSettings", "TurnResult"]

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
    if not turn.message.text.strip() and not turn.message.attachments:
        return Stop("empty", Reply(EMPTY, kind="refusal", ephemeral=True))
    turn.route = "command" if is_command(turn.message.text) else "chat"
    return None


async def respond(turn: Turn, deps: EngineDeps) -> Stop | None:
    await turn.sink.working()
    if turn.route == "chat":
        turn.reply = await answer_chat(turn, deps)
    else:
        turn.reply = await run_command(turn, deps)
        turn.outcome = "command"
    await turn.sink.finish(turn.reply)
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
                      delivered_id(turn.sink), kind=reply.kind, usage=turn.usage,
                      citations=tuple({"title": c.title, "source": c.source, "url": c.url,
                                       "chunk_id": c.chunk_id} for c in reply.citations)),
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


class Engine:
    def __init__(self, deps: EngineDeps) -> None:
        self.deps = deps

    async def record_feedback(self, message: InboundMessage, turn_id: str,
                              rating: Rating) -> bool:
        """Store a rating from the message's author on a turn of the message's tenant."""
        if self.deps.feedback is None:
            return False
        try:
            tenant = self.deps.tenants.for_message(message)
        except UnknownTenant:
            return False
        return await self.deps.feedback.record(FeedbackRecord(
            tenant.id, message.channel, turn_id, message.author.id, rating,
            datetime.now(UTC)))

    async def remove_turn(self, message: InboundMessage) -> tuple[str, str] | None:
        """Forget the turn a (deleted or edited) user message started, in its tenant.

        Takes its place in the conversation's line and holds the conversation lock, like
        a turn: an edit that arrives while its answer is still streaming waits for that
        turn to be stored instead of finding nothing to remove. Returns the removed
        turn's id and its reply's platform id, or None if there was no such turn (or the
        conversation stayed busy past ``lock_wait_s``, which is logged).
        """
        try:
            tenant = self.deps.tenants.for_message(message)
        except UnknownTenant:
            return None
        key = ConversationKey(tenant.id, message.channel, message.thread)
        settings = self.deps.settings
        place = self.deps.arrivals.arrive(key.lock_key())
        try:
            async with asyncio.timeout(settings.lock_wait_s):
                await place.wait()
            async with self.deps.state.conversation_lock(key.lock_key(), settings.lock_wait_s,
                                                         settings.lock_lease_s):
                place.leave()
                return await self.deps.sessions.remove_turn(key, message.platform_message_id)
        except (LockTimeout, TimeoutError):
            log.warning("an edit or deletion waited %.0fs for its conversation; not applied",
                        settings.lock_wait_s, extra={"tenant": tenant.id,
                                                     "channel": message.channel})
            return None
        finally:
            place.leave()

    async def handle(self, message: InboundMessage, sink: ReplySink, *,
                     turn_id: str | None = None, replay: bool = False) -> TurnResult:
        """Run one message through the pipeline; deliver at most one reply to ``sink``.

        ``replay`` is for ``Recovery``: the journaled message of a turn a crash
        interrupted, run again under its original ``turn_id``.
        """
        started = time.perf_counter()
        with log_context(request_id=message.request_id, channel=message.channel):
            async with AsyncExitStack() as exits:
                turn = Turn(message, sink, exits, replay=replay)
                if turn_id:
                    turn.turn_id = turn_id
                await self._run(turn)
            if turn.journaled:
                await self._finish_journal(turn)
            elapsed = time.perf_counter() - started
            tenant = turn.tenant.id if turn.tenant else ""
            metrics.MESSAGES.labels(tenant or "-", message.channel, turn.outcome).inc()
            metrics.TURN_SECONDS.labels(message.channel).observe(elapsed)
            log.info("turn %s", turn.outcome, extra={
                "route": turn.route, "turn_id": turn.turn_id, "ms": round(elapsed * 1000, 2),
                "stages_ms": {k: round(v * 1000, 3) for k, v in turn.stages.items()},
                "request_id": message.request_id, "channel": message.channel,
                **({"tenant": tenant} if tenant else {})})
        return TurnResult(turn.outcome, turn.reply, turn.turn_id, tenant)

    async def _run(self, turn: Turn) -> None:
        stage = "start"
        try:
            for stage, step in PIPELINE:
                t0 = time.perf_counter()
                stop = await step(turn, self.deps)
                took = time.perf_counter() - t0
                turn.stages[stage] = took
                metrics.STAGE_SECONDS.labels(stage).observe(took)
                if stop is not None:
                    turn.outcome, turn.reply = stop.outcome, stop.reply
                    if stop.reply is not None:
                        await turn.sink.finish(stop.reply)
                    return
        except Exception:
            log.exception("turn failed in stage %s", stage)
            await self._fail(turn, stage)

    async def _finish_journal(self, turn: Turn) -> None:
        """Forget the journal entry unless the turn still waits for a write-back."""
        if turn.write_back:
            return
        try:
            await self.deps.journal.done(turn.turn_id)
        except OSError:
            log.exception("could not mark the journaled turn done")

    async def _fail(self, turn: Turn, stage: str) -> None:
        """Apologise, and store the question with the apology so it is not lost."""
        already_replied = turn.reply is not None and stage in ("persist", "usage")
        turn.outcome = "error"
        if turn.tenant is None or already_replied:
            return
        turn.reply = Reply(SORRY, kind="apology", turn_id=turn.turn_id)
        try:
            await turn.sink.finish(turn.reply)
        except Exception:
            log.exception("could not deliver the apology")
        if turn.key is not None and not turn.stored and stage not in ("resolve_tenant",):
            try:
                await persist_turn(turn, self.deps)
            except Exception:
                log.exception("could not store the apologised turn")
