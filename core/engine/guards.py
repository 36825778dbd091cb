"""The first pipeline steps: who is this for, write it down, have we seen it, may they,
is it their turn, what came before.

None of them lets a failing shared dependency lose the message: the intake journal
records it first; with Redis down, dedupe, limits and locks are served by this process
(``core/state/resilient.py``) and dedupe also asks the session store; with MongoDB down
the turn is answered without history.
"""

from __future__ import annotations

import asyncio
import logging

from core.engine.context import Stop, Turn
from core.engine.deps import EngineDeps
from core.intake.codec import message_to_dict
from core.intake.journal import JournalEntry
from core.replies import Reply
from core.sessions.models import ConversationKey
from core.sessions.store import StoreUnavailable
from core.state.base import Bucket, LockTimeout
from core.tenants.registry import UnknownTenant
from observability import metrics
from observability.logging import tenant_var

log = logging.getLogger("switchboard.engine")

BUSY = ("I'm still working on an earlier message in this conversation. "
        "Please send this one again in a moment.")
LIMITS_UNAVAILABLE = ("I can't check this workspace's message limits right now, so I'm not "
                      "answering new messages for a moment. Please try again in a minute.")


async def resolve_tenant(turn: Turn, deps: EngineDeps) -> Stop | None:
    message = turn.message
    try:
        tenant = deps.tenants.for_message(message)
    except UnknownTenant as exc:
        log.warning("message rejected: %s", exc)
        return Stop("unknown_tenant")
    turn.tenant = tenant
    turn.key = ConversationKey(tenant.id, message.channel, message.thread)
    turn.place = deps.arrivals.arrive(turn.key.lock_key())
    turn.exits.callback(turn.place.leave)
    tenant_var.set(tenant.id)
    if message.author.is_bot:
        return Stop("ignored")
    return None


async def record_intake(turn: Turn, deps: EngineDeps) -> Stop | None:
    """Write the accepted message to the local journal before anything can fail."""
    try:
        await deps.journal.accept(JournalEntry(
            turn.turn_id, turn.require_tenant().id, message_to_dict(turn.message),
            dict(turn.out.delivery.address)))
        turn.journaled = True
    except OSError:
        log.exception("could not journal the message; answering it anyway")
    return None


async def _already_stored(turn: Turn, deps: EngineDeps) -> bool:
    if turn.message.revision:
        return False
    try:
        return await deps.sessions.has_message(turn.require_key(),
                                               turn.message.platform_message_id)
    except StoreUnavailable:
        return False


async def drop_duplicate(turn: Turn, deps: EngineDeps) -> Stop | None:
    key = turn.require_key()
    if turn.replay:
        return Stop("duplicate") if await _already_stored(turn, deps) else None
    # Scoped to the conversation: a widget client id is only unique within one visitor's
    # conversation, and a platform message never changes threads.
    dedupe_key = f"{key.tenant}:{key.channel}:{key.thread}:{turn.message.platform_message_id}"
    if turn.message.revision:
        dedupe_key += f":rev:{turn.message.revision}"
    first = await deps.state.first_seen(dedupe_key, deps.settings.dedupe_ttl_s)
    if first and deps.state.degraded:
        first = not await _already_stored(turn, deps)
    if first:
        return None
    metrics.DEDUPE_HITS.labels(key.tenant, key.channel).inc()
    log.info("duplicate delivery dropped", extra={"platform_message_id":
                                                  turn.message.platform_message_id})
    return Stop("duplicate")


async def apply_rate_limits(turn: Turn, deps: EngineDeps) -> Stop | None:
    tenant = turn.require_tenant()
    message = turn.message
    if turn.replay:
        return None
    decision = await deps.state.take([
        Bucket(f"{tenant.id}:tenant", tenant.limits.tenant_per_minute, "tenant"),
        Bucket(f"{tenant.id}:user:{message.channel}:{message.author.id}",
               tenant.limits.user_per_minute, "user"),
    ])
    if decision.degraded and tenant.limits.when_state_down != "local":
        if tenant.limits.when_state_down == "open":
            return None
        metrics.RATE_LIMITED.labels(tenant.id, message.channel, "unavailable").inc()
        return Stop("rate_limited", Reply(LIMITS_UNAVAILABLE, kind="refusal",
                                          ephemeral=True, retry_after_s=60.0))
    if decision.allowed:
        return None
    metrics.RATE_LIMITED.labels(tenant.id, message.channel, decision.scope).inc()
    wait = max(1, round(decision.retry_after_s + 0.49))
    who = "you are" if decision.scope == "user" else "this workspace is"
    text = (f"Slow down a little: {who} sending messages faster than I'm allowed to answer. "
            f"Please try again in {wait} second{'s' if wait != 1 else ''}.")
    return Stop("rate_limited", Reply(text, kind="refusal", ephemeral=True,
                                      retry_after_s=float(wait)))


async def hold_conversation(turn: Turn, deps: EngineDeps) -> Stop | None:
    key = turn.require_key()
    lock = deps.state.conversation_lock(key.lock_key(), deps.settings.lock_wait_s,
                                        deps.settings.lock_lease_s)
    try:
        if turn.place is not None:
            await asyncio.wait_for(turn.place.wait(), deps.settings.lock_wait_s)
        await turn.exits.enter_async_context(lock)
    except (LockTimeout, TimeoutError):
        log.warning("conversation stayed busy for %.0fs", deps.settings.lock_wait_s)
        return Stop("busy", Reply(BUSY, kind="apology", ephemeral=True))
    finally:
        if turn.place is not None:
            turn.place.leave()
    return None


async def load_session(turn: Turn, deps: EngineDeps) -> Stop | None:
    tenant = turn.require_tenant()
    try:
        turn.history = await deps.sessions.recent(turn.require_key(),
                                                  tenant.sessions.history_turns)
    except StoreUnavailable as exc:
        log.warning("answering without history: %s", exc)
        turn.history = []
    return None
