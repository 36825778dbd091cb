"""Knowledge as one service: ingestion, retrieval and cache invalidation, wired together.

Every change to a tenant's knowledge (added, replaced or removed documents, a re-index)
invalidates that tenant's answer cache and its "knowledge loaded" flag, and nothing else.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

from core.knowledge.answer_cache import AnswerCache
from core.knowledge.catalog import DocumentCatalog
from core.knowledge.embedders import EmbedderRegistry
from core.knowledge.index import QdrantIndex
from core.knowledge.ingest import Ingestor, IngestOutcome, IngestReport, Progress
from core.knowledge.models import DocumentRecord
from core.knowledge.retriever import KnowledgeRetriever, Reranker
from core.tenants.models import TenantConfig

log = logging.getLogger("switchboard.knowledge")


class KnowledgeService:
    def __init__(self, index: QdrantIndex, catalog: DocumentCatalog,
                 embedders: EmbedderRegistry, answers: AnswerCache | None, root: Path,
                 reranker: Reranker | None = None) -> None:
        self.index = index
        self.catalog = catalog
        self.embedders = embedders
        self.answers = answers
        self.root = root
        self.retriever = KnowledgeRetriever(index, catalog, embedders.for_tenant, reranker)
        self.ingestor = Ingestor(index, catalog, embedders.for_tenant, self._changed)
        self.loading: dict[str, int] = {}
        """Tenants whose first ingestion runs now, with the documents done so far: until
        it ends, an answer says the documents are still loading and ``/readyz`` is not
        ready."""

    async def _changed(self, tenant_id: str) -> None:
        self.retriever.forget_loaded(tenant_id)
        if self.answers is not None:
            await self.answers.invalidate(tenant_id)

    def configured_sources(self, tenant: TenantConfig, kb: str = "default") -> list[str]:
        return [s.path for s in tenant.knowledge.sources if s.kb == kb]

    async def ingest_configured(self, tenant: TenantConfig, *, only_if_empty: bool = False,
                                progress: Progress | None = None) -> IngestReport | None:
        """Ingest (and sync) the sources the tenant file lists."""
        sources = self.configured_sources(tenant)
        if not sources:
            return None
        if only_if_empty and await self.catalog.count(tenant.id) > 0:
            return None
        first = only_if_empty
        if first:
            self.loading[tenant.id] = 0

        def counted(outcome: IngestOutcome) -> None:
            if first:
                self.loading[tenant.id] = self.loading.get(tenant.id, 0) + 1
            if progress is not None:
                progress(outcome)

        try:
            report = await self.ingestor.ingest(tenant, sources, self.root, sync=True,
                                                progress=counted)
        finally:
            if first:
                self.loading.pop(tenant.id, None)
        log.info("ingested configured sources: %s", report.summary(),
                 extra={"tenant": tenant.id})
        return report

    async def tag(self, tenant: TenantConfig, source: str, tags: list[str],
                  kb: str = "default") -> DocumentRecord | None:
        """Set the tags of the document from ``source`` (its path, URL or title) in the
        catalog and on every chunk, so tag filters find it; None if there is none."""
        records = await self.catalog.list(tenant.id, kb)
        record = next((r for r in records if source in (r.source, r.url, r.title)), None)
        if record is None:
            return None
        await self.index.set_tags(self.index.alias(tenant.id, kb), record.chunk_ids, tags)
        tagged = replace(record, tags=sorted(set(tags)))
        await self.catalog.put(tagged)
        await self._changed(tenant.id)
        return tagged

    async def close(self) -> None:
        await self.index.close()
