"""The engine: the one interface adapters use.

An adapter hands it a message and its delivery (``handle``; the turn's typed events
go through the outbound chain to it), asks it to forget a turn
whose question was edited or deleted (``remove_turn``), records feedback, and asks the
few questions a channel needs answered — which tenant a binding or id names, whether a
conversation exists, its transcript, which commands a user may run, whether an address
may start something new (``admit``), a one-shot grounded search, structured output
(``analyze``), at-most-once requests (``once``, for ``Idempotency-Key``), the admin
API's document operations, and single-use tokens for OAuth flows. Nothing outside
``core/engine`` reads the engine's dependencies (``EngineDeps``): the stages that use
them live in ``pipeline.py`` and ``guards.py``.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import secrets
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from opentelemetry.trace import SpanKind, Status, StatusCode

from core.commands.registry import Command
from core.engine import knowledge_admin
from core.engine.analyze import Analysis, analyze
from core.engine.console import Console
from core.engine.context import Turn
from core.engine.deps import EngineDeps
from core.engine.idempotency import KeptResponse, Run, once
from core.engine.knowledge_admin import FileDocument, SourceView, TextDocument
from core.engine.pipeline import PIPELINE, SORRY, TurnResult, persist_turn
from core.engine.search import SearchAnswer, search_and_answer
from core.feedback import FeedbackRecord, Rating
from core.knowledge.base import SearchFilters
from core.knowledge.ingest import IngestReport, Progress
from core.knowledge.models import DocumentRecord
from core.messages import Binding, Channel, InboundMessage
from core.replies import Reply
from core.sessions.models import ConversationKey, StoredMessage
from core.state.base import Bucket, LockTimeout, RateDecision
from core.tenants.models import TenantConfig
from core.tenants.registry import UnknownTenant
from core.turns.chain import Delivery
from core.turns.events import FinalReply, TurnFailed
from observability import metrics
from observability.logging import log_context
from observability.tracing import span, tracer

log = logging.getLogger("switchboard.engine")


class Engine:
    def __init__(self, deps: EngineDeps) -> None:
        self.deps = deps
        """For the composition root and the engine's own stages only."""

    # -- what a channel may ask ------------------------------------------------------

    @functools.cached_property
    def console(self) -> Console:
        """The operators' console's queries (``console.py``), per tenant."""
        return Console(self.deps)

    def tenant(self, tenant_id: str) -> TenantConfig:
        """A tenant by id; raises ``UnknownTenant``."""
        return self.deps.tenants.get(tenant_id)

    def tenant_for(self, binding: Binding) -> TenantConfig:
        """The tenant a platform binding names; raises ``UnknownTenant`` (counted)."""
        return self.deps.tenants.resolve(binding)

    def tenants(self) -> list[TenantConfig]:
        registry = self.deps.tenants
        return [registry.get(t) for t in registry.tenant_ids()]

    async def conversation_exists(self, tenant_id: str, channel: Channel,
                                  thread: str) -> bool:
        """Whether the conversation has any stored message (a thread the bot is in).

        When nothing is stored yet, waits for a turn of that conversation still being
        answered, so a follow-up sent right after the first answer appeared — before its
        turn was stored — is not mistaken for a message in a thread the bot never joined.
        """
        key = ConversationKey(tenant_id, channel, thread)
        if await self.deps.sessions.recent(key, 1):
            return True
        try:
            async with self._in_line(key):
                return bool(await self.deps.sessions.recent(key, 1))
        except (LockTimeout, TimeoutError):
            return bool(await self.deps.sessions.recent(key, 1))

    async def transcript(self, tenant_id: str, channel: Channel, thread: str,
                         limit: int) -> list[StoredMessage]:
        """The conversation's last ``limit`` messages with citations, oldest first."""
        return await self.deps.sessions.transcript(ConversationKey(tenant_id, channel, thread),
                                                   limit)

    def commands_for(self, tenant: TenantConfig, *, admin: bool) -> list[Command]:
        """The commands the tenant enables that a user (an admin, or not) may run."""
        return self.deps.commands.available(tenant, is_admin=admin)

    def command(self, name: str) -> Command | None:
        return self.deps.commands.get(name)

    async def admit(self, tenant: TenantConfig, what: str, who: str,
                    per_minute: int) -> RateDecision:
        """An admission check before anything reaches the pipeline (an address opening
        conversations or sending messages to the widget): one token of the tenant's
        ``what`` bucket for ``who``."""
        return await self.deps.state.take([Bucket(f"{tenant.id}:{what}:{who}", per_minute,
                                                  "ip")])

    async def search(self, tenant: TenantConfig, query: str,
                     filters: SearchFilters | None = None,
                     top_k: int | None = None) -> SearchAnswer:
        """A one-shot grounded answer with citations (the admin API's search)."""
        return await search_and_answer(self.deps, tenant, query, filters, top_k)

    async def analyze(self, tenant: TenantConfig, text: str, schema: dict[str, Any] | None,
                      schema_name: str | None, repairs: int = 2) -> Analysis:
        """Structured output (``analyze.py``): JSON from ``text`` that validates against
        the schema; raises ``SchemaProblem`` for an unusable schema."""
        return await analyze(self.deps, tenant, text, schema, schema_name, repairs)

    async def once(self, tenant: TenantConfig, key: str, fingerprint: str,
                   run: Run) -> KeptResponse:
        """Run a request with an ``Idempotency-Key`` at most once (``idempotency.py``)."""
        return await once(self.deps.state, tenant.id, key, fingerprint, run)

    # -- knowledge administration (the admin API) ------------------------------------

    async def documents(self, tenant: TenantConfig) -> list[DocumentRecord]:
        """The tenant's documents; raises ``KnowledgeUnavailable``."""
        return await knowledge_admin.documents(self.deps, tenant)

    async def ingest(self, tenant: TenantConfig, urls: Sequence[str],
                     texts: Sequence[TextDocument], kb: str = "default",
                     tags: tuple[str, ...] = ()) -> IngestReport:
        """Add (or replace) documents from URLs and text; raises ``KnowledgeUnavailable``."""
        return await knowledge_admin.ingest(self.deps, tenant, urls, texts, kb, tags)

    async def ingest_sources(self, tenant: TenantConfig, sources: Sequence[str], *,
                             kb: str = "default", reindex: bool = False,
                             progress: Progress | None = None) -> IngestReport:
        """Ingest files, folders and URLs as the CLI names them (the terminal's
        ``switchboard ingest`` beside a running ``serve``); raises ``KnowledgeUnavailable``."""
        return await knowledge_admin.ingest_sources(self.deps, tenant, sources, kb, reindex,
                                                    progress)

    async def ingest_files(self, tenant: TenantConfig, files: Sequence[FileDocument],
                           kb: str = "default", tags: tuple[str, ...] = ()) -> IngestReport:
        """Add (or replace) uploaded files; raises ``KnowledgeUnavailable``."""
        return await knowledge_admin.ingest_files(self.deps, tenant, files, kb, tags)

    async def source_view(self, tenant: TenantConfig, chunk_id: str) -> SourceView | None:
        """A cited passage of the tenant's, in its document (a citation's source page)."""
        return await knowledge_admin.source_view(self.deps, tenant, chunk_id)

    async def remove_document(self, tenant: TenantConfig, doc_id: str) -> bool:
        """Remove a document of the tenant, its chunks and vectors; False if none."""
        return await knowledge_admin.remove(self.deps, tenant, doc_id)

    # -- single-use tokens (an OAuth flow's ``state``) ---------------------------------

    async def issue_nonce(self, scope: str, ttl_s: int) -> str:
        """A random single-use token, kept in shared state so any worker can redeem it."""
        nonce = secrets.token_urlsafe(24)
        await self.deps.state.cache_set(f"nonce:{scope}:{nonce}", "1", ttl_s)
        return nonce

    async def redeem_nonce(self, scope: str, nonce: str) -> bool:
        """True once for a token ``issue_nonce`` made and that has not expired."""
        key = f"nonce:{scope}:{nonce}"
        if not nonce or await self.deps.state.cache_get(key) is None:
            return False
        await self.deps.state.cache_delete(key)
        return True

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
        try:
            async with self._in_line(key):
                return await self.deps.sessions.remove_turn(key, message.platform_message_id)
        except (LockTimeout, TimeoutError):
            log.warning("an edit or deletion waited %.0fs for its conversation; not applied",
                        self.deps.settings.lock_wait_s,
                        extra={"tenant": tenant.id, "channel": message.channel})
            return None

    @asynccontextmanager
    async def _in_line(self, key: ConversationKey) -> AsyncIterator[None]:
        """Wait for the conversation like a turn does — its place in this process's line,
        then the conversation lock — so a turn still being answered is finished (and
        stored) first. Raises ``LockTimeout``/``TimeoutError`` after ``lock_wait_s``."""
        settings = self.deps.settings
        place = self.deps.arrivals.arrive(key.lock_key())
        try:
            async with asyncio.timeout(settings.lock_wait_s):
                await place.wait()
            async with self.deps.state.conversation_lock(key.lock_key(), settings.lock_wait_s,
                                                         settings.lock_lease_s):
                place.leave()
                yield
        finally:
            place.leave()

    async def handle(self, message: InboundMessage, delivery: Delivery, *,
                     turn_id: str | None = None, replay: bool = False) -> TurnResult:
        """Run one message through the pipeline; its events go through the process's
        outbound chain to ``delivery``, ending in at most one reply.

        ``replay`` is for ``Recovery``: the journaled message of a turn a crash
        interrupted, run again under its original ``turn_id``.
        """
        started = time.perf_counter()
        with log_context(request_id=message.request_id, channel=message.channel), \
                tracer.start_as_current_span("turn", kind=SpanKind.SERVER, attributes={
                    "switchboard.channel": message.channel,
                    "switchboard.request_id": message.request_id,
                    "switchboard.replay": replay}) as span:
            async with AsyncExitStack() as exits:
                turn = Turn(message, self.deps.outbound.bind(delivery), exits, replay=replay)
                if turn_id:
                    turn.turn_id = turn_id
                await self._run(turn)
            if turn.journaled:
                await self._finish_journal(turn)
            elapsed = time.perf_counter() - started
            tenant = turn.tenant.id if turn.tenant else ""
            span.set_attributes({"switchboard.tenant": tenant, "switchboard.turn_id":
                                 turn.turn_id, "switchboard.outcome": turn.outcome,
                                 "switchboard.route": turn.route})
            if turn.outcome in ("error", "llm_error"):
                span.set_status(Status(StatusCode.ERROR, turn.outcome))
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
                with span(f"stage.{stage}"):
                    stop = await step(turn, self.deps)
                took = time.perf_counter() - t0
                turn.stages[stage] = took
                metrics.STAGE_SECONDS.labels(stage).observe(took)
                if stop is not None:
                    turn.outcome, turn.reply = stop.outcome, stop.reply
                    if stop.reply is not None:
                        await turn.out.emit(FinalReply(turn.turn_id, stop.reply))
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
            await turn.out.emit(TurnFailed(turn.turn_id, turn.reply, stage))
        except Exception:
            log.exception("could not deliver the apology")
        if turn.key is not None and not turn.stored:
            try:
                await persist_turn(turn, self.deps)
            except Exception:
                log.exception("could not store the apologised turn")
