"""The first pipeline steps: who is this for, have we seen it, may they, is it their turn."""

from __future__ import annotations

import asyncio
import logging

from core.engine.context import Stop, Turn
from core.engine.deps import EngineDeps
from core.observability import metrics
from core.observability.logging import tenant_var
from core.replies import Reply
from core.sessions.models import ConversationKey
from core.state.base import Bucket, LockTimeout
from core.tenants.registry import UnknownTenant

log = logging.getLogger("switchboard.engine")

BUSY = ("I'm still working on an earlier message in this conversation. "
        "Please send this one again in a moment.")


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


async def drop_duplicate(turn: Turn, deps: EngineDeps) -> Stop | None:
    key = turn.require_key()
    dedupe_key = f"{key.tenant}:{key.channel}:{turn.message.platform_message_id}"
    if turn.message.revision:
        dedupe_key += f":rev:{turn.message.revision}"
    if await deps.state.first_seen(dedupe_key, deps.settings.dedupe_ttl_s):
        return None
    metrics.DEDUPE_HITS.labels(key.tenant, key.channel).inc()
    log.info("duplicate delivery dropped", extra={"platform_message_id":
                                                  turn.message.platform_message_id})
    return Stop("duplicate")


async def apply_rate_limits(turn: Turn, deps: EngineDeps) -> Stop | None:
    tenant = turn.require_tenant()
    message = turn.message
    decision = await deps.state.take([
        Bucket(f"{tenant.id}:tenant", tenant.limits.tenant_per_minute, "tenant"),
        Bucket(f"{tenant.id}:user:{message.channel}:{message.author.id}",
               tenant.limits.user_per_minute, "user"),
    ])
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
    turn.history = await deps.sessions.recent(turn.require_key(), tenant.sessions.history_turns)
    return None
