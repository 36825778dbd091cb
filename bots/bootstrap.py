"""The composition root: the only place concrete implementations are chosen.

``open_services`` builds the real or embedded implementation of every core interface
from the settings, wires the engine, and closes everything in reverse order on exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field

from redis.exceptions import RedisError

from adapters.source_page import SourceLinks
from adapters.widget.identity import load_key
from bots.embedded_mongo import EmbeddedMongo
from bots.settings import Settings
from core.commands.audit import AuditLog
from core.commands.builtins import builtin_commands
from core.engine import Engine, EngineDeps, EngineSettings
from core.intake.journal import FileTurnJournal, JournalEntry, MemoryTurnJournal, TurnJournal
from core.knowledge.answer_cache import AnswerCache
from core.knowledge.base import Retriever
from core.knowledge.embedders import EmbedderRegistry
from core.knowledge.index import QdrantIndex
from core.knowledge.service import KnowledgeService
from core.llm.base import Answerer
from core.llm.extractive import ExtractiveAnswerer
from core.llm.moderation import Moderator, OpenAIModerator
from core.llm.openai_chat import OpenAIAnswerer
from core.safety.output_filter import OutputFilter
from core.sessions.cached import CachedSessionStore
from core.sessions.store import SessionStore
from core.state.base import SharedState
from core.state.memory import MemoryState
from core.state.redis import RedisState
from core.state.resilient import ResilientState
from core.stores.mongo_audit import MongoAuditLog
from core.stores.mongo_client import MongoConnection
from core.stores.mongo_documents import MongoCatalog
from core.stores.mongo_feedback import MongoFeedbackStore
from core.stores.mongo_sessions import MongoSessionStore
from core.stores.mongo_usage import MongoUsageStore
from core.tenants.registry import TenantRegistry
from core.turns.chain import OutboundChain, Stage
from core.turns.observe import count_events
from core.usage import UsageLedger
from observability.logging import register_secret

OUTBOUND_STAGES: tuple[Stage, ...] = (count_events,)
"""The outbound chain's first stages, in order: each turn event passes these, then the
output filter (``core/safety/output_filter.py``, which needs the tenant registry), before
the channel's delivery (``core/turns/chain.py``)."""
log = logging.getLogger("switchboard.bootstrap")

Check = Callable[[], Awaitable[None]]


def outbound_chain(tenants: TenantRegistry, audit: AuditLog,
                   moderator: Moderator | None) -> OutboundChain:
    """The chain every process's turns go out through (the red-team suite runs it too)."""
    return OutboundChain((*OUTBOUND_STAGES, OutputFilter(tenants.for_message, audit,
                                                         moderator)))


@dataclass(slots=True)
class Services:
    settings: Settings
    engine: Engine
    tenants: TenantRegistry
    mongo: MongoConnection
    sessions: SessionStore
    state: SharedState
    answerer: Answerer
    retriever: Retriever
    knowledge: KnowledgeService
    usage: UsageLedger
    checks: dict[str, Check] = field(default_factory=dict)
    descriptions: dict[str, str] = field(default_factory=dict)
    orphans: list[JournalEntry] = field(default_factory=list)
    """Turns the journal holds from before this process started (see Recovery)."""


def choose_answerer(settings: Settings, embedders: EmbedderRegistry) -> Answerer:
    """The OpenAI-compatible model when a key is set; otherwise the offline answerer,
    which ranks sentences with the offline embedder."""
    if settings.openai_api_key:
        return OpenAIAnswerer(settings.openai_api_key, settings.openai_base_url or None)
    return ExtractiveAnswerer(embedders.local())


async def open_knowledge(settings: Settings, mongo: MongoConnection, state: SharedState, *,
                         create_indexes: bool = True) -> KnowledgeService:
    """``create_indexes``: False for ``deploy plan``, which must change nothing."""
    index = QdrantIndex(url=settings.qdrant_url, api_key=settings.qdrant_api_key,
                        path=None if settings.qdrant_url else settings.data_dir / "qdrant")
    embedders = EmbedderRegistry(settings.openai_api_key, settings.openai_base_url)
    catalog = MongoCatalog(mongo.db)
    if create_indexes:
        await catalog.ensure_indexes()
    root = await asyncio.to_thread(lambda: settings.tenants_dir.resolve().parent)
    return KnowledgeService(index, catalog, embedders, AnswerCache(state), root)


async def _initial_ingest(services: Services) -> None:
    """Tenants whose knowledge base is empty ingest the sources their file lists."""
    for tenant_id in services.tenants.tenant_ids():
        tenant = services.tenants.get(tenant_id)
        started = time.monotonic()
        try:
            report = await services.knowledge.ingest_configured(tenant, only_if_empty=True)
            if report is not None:
                log.info("the first documents of %s are in: %d documents in %.0f s",
                         tenant_id, len(report.outcomes), time.monotonic() - started,
                         extra={"tenant": tenant_id})
        except Exception as exc:
            log.error("first ingestion of %s failed: %s", tenant_id, exc,
                      extra={"tenant": tenant_id})


@asynccontextmanager
async def open_services(settings: Settings, *, watch_tenants: bool = False,
                        engine_settings: EngineSettings | None = None,
                        initial_ingest: str = "off",
                        journal: str = "") -> AsyncIterator[Services]:
    """Build every service. ``initial_ingest``: "background", "wait" or "off".

    ``journal`` names the process kind ("web", "discord", "chat") whose local turn
    journal (``$SWITCHBOARD_DATA_DIR/journal``) this process holds; empty for processes
    that run no turns.
    """
    for secret in settings.secrets():
        register_secret(secret)
    async with AsyncExitStack() as stack:
        uri = settings.mongodb_uri
        mongo_desc = "MongoDB at MONGODB_URI"
        if not uri:
            embedded = EmbeddedMongo(settings.data_dir / "mongo")
            uri = await embedded.start()
            stack.push_async_callback(embedded.stop)
            mongo_desc = f"embedded MongoDB-wire server (nx-27017), data in {embedded.directory}"
        mongo = MongoConnection(uri)
        stack.push_async_callback(mongo.close)
        mongo_sessions = MongoSessionStore(mongo.db)
        audit = MongoAuditLog(mongo.db)
        await mongo_sessions.ensure_indexes()
        await audit.ensure_indexes()

        state: SharedState
        if settings.redis_url:
            state = ResilientState(RedisState(
                settings.redis_url, max_connections=settings.redis_max_connections,
                pool_timeout_s=settings.redis_pool_timeout_s),
                errors=(RedisError, OSError))
        else:
            state = MemoryState()
            # Said where it matters, by the long-running processes; a one-shot command
            # (chat, ingest) is one process by nature.
            log.log(logging.WARNING if journal.startswith(("web", "discord")) else logging.INFO,
                    "REDIS_URL is unset: rate limits, dedupe and locks are in-process "
                    "(valid for one process only)")
        stack.push_async_callback(state.close)
        sessions = CachedSessionStore(mongo_sessions, state)

        tenants = TenantRegistry(settings.tenants_dir)
        report = await asyncio.to_thread(tenants.reload)
        for tenant_id in report.loaded:
            for env_name in _secret_env_names(tenants, tenant_id):
                register_secret(os.environ.get(env_name, ""))
        if watch_tenants:
            watcher = asyncio.create_task(tenants.watch(settings.tenant_watch_interval_s))
            stack.push_async_callback(_cancel, watcher)

        knowledge = await open_knowledge(settings, mongo, state)
        stack.push_async_callback(knowledge.close)
        answerer = choose_answerer(settings, knowledge.embedders)
        stack.push_async_callback(answerer.close)
        moderator: Moderator | None = None
        if settings.openai_api_key:
            moderator = OpenAIModerator(settings.openai_api_key, settings.openai_base_url or None)
            stack.push_async_callback(moderator.close)
        else:
            wanting = [t for t in report.loaded if tenants.get(t).safety.moderation]
            if wanting:
                log.warning("[safety] moderation is on for %s but OPENAI_API_KEY is unset: "
                            "no provider moderation runs", ", ".join(sorted(wanting)))
        retriever: Retriever = knowledge.retriever

        usage = UsageLedger(MongoUsageStore(mongo.db), state)
        usage.start()
        stack.push_async_callback(usage.close)

        turn_journal: TurnJournal = MemoryTurnJournal()
        orphans: list[JournalEntry] = []
        if journal:
            turn_journal, orphans = await asyncio.to_thread(
                FileTurnJournal.open, settings.data_dir / "journal", journal,
                fsync=settings.journal_fsync)
            stack.push_async_callback(turn_journal.close)

        engine = Engine(EngineDeps(
            tenants=tenants, state=state, sessions=sessions, usage=usage, audit=audit,
            answerer=answerer, retriever=retriever, commands=builtin_commands(),
            settings=engine_settings or EngineSettings(), answer_cache=knowledge.answers,
            knowledge=knowledge, feedback=MongoFeedbackStore(mongo.db),
            journal=turn_journal,
            outbound=outbound_chain(tenants, audit, moderator),
            moderator=moderator,
            source_link=await _source_link(settings)))
        services = Services(
            settings=settings, engine=engine, tenants=tenants, mongo=mongo,
            sessions=sessions, state=state, answerer=answerer, retriever=retriever,
            knowledge=knowledge, usage=usage, orphans=orphans,
            checks={"mongodb": mongo.ping, "redis": state.ping, "llm": answerer.ping,
                    "knowledge": retriever.ping},
            descriptions={"mongodb": mongo_desc,
                          "redis": "Redis at REDIS_URL" if settings.redis_url
                          else "in-process (one process only)",
                          "llm": answerer.name, "knowledge": knowledge.index.description},
        )
        log.info("services ready: %s", "; ".join(f"{k}: {v}" for k, v in
                                                  services.descriptions.items()))
        settle_heap()
        if initial_ingest == "wait":
            await _initial_ingest(services)
        elif initial_ingest == "background":
            task = asyncio.create_task(_initial_ingest(services))
            stack.push_async_callback(_cancel, task)
        yield services


async def _source_link(settings: Settings) -> Callable[[str, str], str] | None:
    """Signed source-page links at the public address, with the key every process of
    this installation shares (``SWITCHBOARD_WIDGET_KEY``, or the one in the data dir)."""
    if not settings.public_url:
        return None
    key = await asyncio.to_thread(load_key, os.environ.get("SWITCHBOARD_WIDGET_KEY", ""),
                                  settings.data_dir)
    links = SourceLinks(key)
    base = settings.public_url

    def link(tenant: str, chunk_id: str) -> str:
        return base + links.path(tenant, chunk_id)

    return link


def settle_heap() -> None:
    """Move everything built at start (libraries, models, vocabularies: a few hundred
    thousand objects) out of the garbage collector's reach, and collect less often. A
    full collection over them stops the event loop for about 0.1 s, which showed as the
    Slack ack p99; afterwards collections only walk what turns allocate."""
    gc.collect()
    gc.freeze()
    # A turn allocates a few thousand short-lived objects; at the default threshold of
    # 700 the young generation is collected several times a turn and the older ones
    # (the knowledge index's payloads, loaded later) often. 3-4 % more widget turns/s
    # (docs/benchmarks.md).
    gc.set_threshold(10_000, 20, 50)


def _secret_env_names(tenants: TenantRegistry, tenant_id: str) -> list[str]:
    config = tenants.get(tenant_id)
    names = [config.slack.bot_token_env, config.slack.signing_secret_env,
             config.widget.secret_env]
    return [n for n in names if n]


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
