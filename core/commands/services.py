"""What command and tool handlers may use, bound to one tenant by construction.

A handler never gets a store, a registry or an index: it gets these wrappers, which
hold the tenant's id privately and put it into every call themselves. A handler cannot
name another tenant — there is no argument to name it with — so no command or tool can
read or change another tenant's sessions, usage, knowledge or settings.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

from core.knowledge.base import Passage, Retriever
from core.knowledge.ingest import IngestReport
from core.knowledge.models import DocumentRecord, SourceDocument
from core.knowledge.service import KnowledgeService
from core.knowledge.sources import SourceFailure
from core.sessions.models import ConversationKey, StoredMessage, TenantStats
from core.sessions.store import SessionStore
from core.tenants.models import TenantConfig
from core.tenants.registry import TenantRegistry
from core.usage import MonthlyUsage, UsageLedger


class CommandInfo(Protocol):
    """What help needs to know about a command (``core.commands.registry.Command``)."""

    @property
    def name(self) -> str: ...

    def help_line(self) -> str: ...


class Catalog(Protocol):
    """The commands a tenant's users may run (the registry, seen from one tenant)."""

    def get(self, name: str) -> CommandInfo | None: ...

    def available(self, tenant: TenantConfig, is_admin: bool) -> Sequence[CommandInfo]: ...


class TenantSessions:
    def __init__(self, store: SessionStore, tenant: str) -> None:
        self._store, self._tenant = store, tenant

    def _own(self, key: ConversationKey) -> ConversationKey:
        if key.tenant != self._tenant:
            raise PermissionError("a conversation of another tenant")
        return key

    async def forget_user(self, user_id: str) -> int:
        return await self._store.forget_user(self._tenant, user_id)

    async def forget_thread(self, key: ConversationKey) -> int:
        return await self._store.forget_thread(self._own(key))

    async def transcript(self, key: ConversationKey, limit: int) -> list[StoredMessage]:
        return await self._store.transcript(self._own(key), limit)

    async def stats(self, since: datetime) -> TenantStats:
        return await self._store.stats(self._tenant, since)


class TenantUsage:
    def __init__(self, ledger: UsageLedger, tenant: str) -> None:
        self._ledger, self._tenant = ledger, tenant

    async def month(self, start: datetime) -> MonthlyUsage:
        return await self._ledger.month(self._tenant, start)


class TenantKnowledge:
    """The tenant's documents: search, list, add, tag."""

    def __init__(self, knowledge: KnowledgeService | None, retriever: Retriever,
                 tenant: TenantConfig) -> None:
        self._knowledge, self._retriever, self._tenant = knowledge, retriever, tenant

    @property
    def available(self) -> bool:
        """Whether this process can change the knowledge base (``/ingest``, tags)."""
        return self._knowledge is not None

    def _service(self) -> KnowledgeService:
        if self._knowledge is None:
            raise RuntimeError("knowledge is not available in this process")
        return self._knowledge

    async def search(self, query: str, top_k: int = 5) -> list[Passage]:
        if not await self._retriever.has_knowledge(self._tenant):
            return []
        return await self._retriever.search(self._tenant, query, [], None, top_k=top_k)

    async def documents(self) -> list[DocumentRecord]:
        return await self._service().catalog.list(self._tenant.id)

    async def ingest_urls(self, urls: list[str], *, allow_private: bool | None = None
                          ) -> IngestReport:
        """``allow_private``: None follows the tenant's ``knowledge.allow_private_urls``;
        False refuses private addresses whatever it says (tools)."""
        service = self._service()
        return await service.ingestor.ingest(self._tenant, urls, service.root,
                                             allow_private=allow_private)

    async def ingest_files(self, documents: AsyncIterator[SourceDocument | SourceFailure]
                           ) -> IngestReport:
        return await self._service().ingestor.ingest_stream(self._tenant, documents)

    async def tag(self, source: str, tags: list[str]) -> DocumentRecord | None:
        """Set a document's tags (the catalog and every chunk); None if no such source."""
        return await self._service().tag(self._tenant, source, tags)


class TenantSettings:
    def __init__(self, registry: TenantRegistry, tenant: str) -> None:
        self._registry, self._tenant = registry, tenant

    async def reload(self) -> tuple[bool, list[tuple[str, str]]]:
        """Re-read the tenant files. Returns whether this tenant's file changed and the
        problems found in it (field, reason) — nothing about any other tenant."""
        report = await asyncio.to_thread(self._registry.reload)
        own = [(p.field, p.reason) for p in report.problems
               if Path(p.file).stem == self._tenant]
        return self._tenant in report.changed, own


@dataclass(frozen=True, slots=True)
class TenantServices:
    tenant_id: str
    sessions: TenantSessions
    usage: TenantUsage
    knowledge: TenantKnowledge
    settings: TenantSettings
    commands: Catalog


@dataclass(frozen=True, slots=True)
class ServiceFactory:
    """Builds one tenant's services from the process's stores (composition root)."""

    sessions: SessionStore
    usage: UsageLedger
    tenants: TenantRegistry
    retriever: Retriever
    commands: Catalog
    knowledge: KnowledgeService | None = None

    def for_tenant(self, tenant: TenantConfig) -> TenantServices:
        return TenantServices(
            tenant.id, TenantSessions(self.sessions, tenant.id),
            TenantUsage(self.usage, tenant.id),
            TenantKnowledge(self.knowledge, self.retriever, tenant),
            TenantSettings(self.tenants, tenant.id), self.commands)
