"""Ingestion: sources → extracted text → chunks → embeddings → the tenant's index.

Idempotent by construction: a document's id comes from its source and its signature from
its bytes plus the chunking and embedding settings, so an unchanged source writes
nothing; a changed one upserts its new chunks and deletes the old ones in one ordered
request; a removed one loses its vectors and its record. Work is pipelined — extraction
and chunking, embedding (in a worker thread, batched across documents), and writing run
concurrently — so ingestion runs close to the embedder's own speed.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import numpy as np

from core.knowledge.catalog import DocumentCatalog, IngestRun, KnowledgeBaseInfo
from core.knowledge.chunking import chunk_document
from core.knowledge.embedders import Embedder
from core.knowledge.extract import ExtractionError, extract
from core.knowledge.index import IndexPoint, QdrantIndex
from core.knowledge.models import (
    Chunk,
    DocumentRecord,
    ExtractedDocument,
    SourceDocument,
    document_id,
)
from core.knowledge.sources import SourceFailure, expand, is_url, source_name
from core.knowledge.sparse import encode_document
from core.tenants.models import TenantConfig
from observability import metrics

log = logging.getLogger("switchboard.knowledge")

Status = Literal["added", "unchanged", "replaced", "failed", "removed"]
EMBED_BATCH = 256
WRITE_BATCH = 256


class EmbedderMismatch(RuntimeError):
    """The knowledge base was built with another embedder; a full re-index is needed."""


@dataclass(frozen=True, slots=True)
class IngestOutcome:
    source: str
    status: Status
    chunks: int = 0
    reason: str = ""
    doc_id: str = ""


@dataclass(slots=True)
class IngestReport:
    outcomes: list[IngestOutcome] = field(default_factory=list)

    def count(self, status: Status) -> int:
        return sum(1 for o in self.outcomes if o.status == status)

    @property
    def changed(self) -> bool:
        return any(o.status in ("added", "replaced", "removed") for o in self.outcomes)

    def summary(self) -> dict[str, int]:
        return {s: self.count(s) for s in ("added", "unchanged", "replaced", "removed",
                                           "failed")}


@dataclass(slots=True)
class _Prepared:
    record: DocumentRecord
    chunks: list[Chunk]
    stale_ids: list[str]
    status: Status
    vectors: np.ndarray | None = None


Progress = Callable[[IngestOutcome], None]
ChangeHook = Callable[[str], Awaitable[None]]


def effective_chunk_tokens(tenant: TenantConfig, embedder: Embedder) -> int:
    """The tenant's chunk size, capped so the embedder reads every token of a chunk."""
    limit = getattr(embedder, "max_tokens", 0)
    size = tenant.knowledge.chunk_tokens
    return min(size, limit - 32) if limit else size


class Ingestor:
    def __init__(self, index: QdrantIndex, catalog: DocumentCatalog,
                 embedder_for: Callable[[TenantConfig], Embedder],
                 on_change: ChangeHook | None = None) -> None:
        self.index = index
        self.catalog = catalog
        self.embedder_for = embedder_for
        self._on_change = on_change
        self._kb_locks: dict[tuple[str, str], asyncio.Lock] = {}

    async def ensure_kb(self, tenant: TenantConfig, kb: str) -> str:
        """The alias of the tenant's knowledge base, created on first use."""
        embedder = self.embedder_for(tenant)
        info = await self.catalog.kb_info(tenant.id, kb)
        alias = self.index.alias(tenant.id, kb)
        if info is not None and (info.embedder, info.dimension) != (embedder.name,
                                                                    embedder.dimension):
            raise EmbedderMismatch(
                f"knowledge base {kb!r} of {tenant.id} was built with {info.embedder} "
                f"({info.dimension} dimensions) but the tenant file now says "
                f"{embedder.name} ({embedder.dimension}); run `switchboard ingest --reindex`")
        if not await self.index.exists(alias):
            await self.index.point_alias(alias, await self.index.create(
                tenant.id, kb, embedder.dimension))
        elif await self.index.dimension(alias) != embedder.dimension:
            raise EmbedderMismatch(f"collection {alias} holds vectors of another size than "
                                   f"{embedder.name} makes; run `switchboard ingest --reindex`")
        if info is None:
            await self.catalog.set_kb_info(KnowledgeBaseInfo(tenant.id, kb, embedder.name,
                                                             embedder.dimension))
        return alias

    async def ingest(self, tenant: TenantConfig, sources: list[str], root: Path, *,
                     kb: str = "default", tags: tuple[str, ...] = (), sync: bool = False,
                     progress: Progress | None = None, allow_private: bool | None = None
                     ) -> IngestReport:
        """Ingest sources; with ``sync``, also remove documents those sources no longer hold.
        ``allow_private`` narrows the tenant's ``allow_private_urls`` (None: as it says)."""
        private = tenant.knowledge.allow_private_urls and allow_private is not False
        lock = self._kb_locks.setdefault((tenant.id, kb), asyncio.Lock())
        async with lock:
            alias = await self.ensure_kb(tenant, kb)
            documents = expand(sources, root, tags=tags, allow_private=private,
                               max_bytes=tenant.knowledge.max_file_mb * 1024 * 1024,
                               url_bases={s.path: str(s.url_base)
                                          for s in tenant.knowledge.sources if s.url_base})
            report = await self._run(tenant, kb, alias, documents, progress)
            if sync:
                await self._remove_missing(tenant, kb, alias, sources, root, report, progress)
        if report.changed and self._on_change is not None:
            await self._on_change(tenant.id)
        return report

    async def ingest_stream(self, tenant: TenantConfig,
                            documents: AsyncIterator[SourceDocument | SourceFailure], *,
                            kb: str = "default", progress: Progress | None = None
                            ) -> IngestReport:
        """Ingest already-loaded documents (uploads, evaluation corpora)."""
        lock = self._kb_locks.setdefault((tenant.id, kb), asyncio.Lock())
        async with lock:
            target = await self.ensure_kb(tenant, kb)
            report = await self._run(tenant, kb, target, documents, progress)
        if report.changed and self._on_change is not None:
            await self._on_change(tenant.id)
        return report

    async def reindex(self, tenant: TenantConfig, sources: list[str], root: Path, *,
                      kb: str = "default", progress: Progress | None = None) -> IngestReport:
        """Rebuild the knowledge base in a new collection, then move the alias to it.

        Queries keep hitting the old collection until the switch, which is one atomic
        alias operation. Sources are the given ones plus every file or URL already in
        the catalog; documents that were uploaded inline cannot be re-read.
        """
        lock = self._kb_locks.setdefault((tenant.id, kb), asyncio.Lock())
        async with lock:
            embedder = self.embedder_for(tenant)
            known = await self.catalog.list(tenant.id, kb)
            wanted = list(dict.fromkeys([*sources, *(r.source for r in known
                                                     if not r.source.startswith("inline:"))]))
            collection = await self.index.create(tenant.id, kb, embedder.dimension)
            documents = expand(wanted, root, allow_private=tenant.knowledge.allow_private_urls,
                               max_bytes=tenant.knowledge.max_file_mb * 1024 * 1024)
            report = await self._run(tenant, kb, collection, documents, progress, force=True)
            for record in known:
                if record.source.startswith("inline:"):
                    report.outcomes.append(IngestOutcome(
                        record.source, "failed", reason="uploaded inline; upload it again"))
            fresh = {o.doc_id for o in report.outcomes if o.status in ("added", "replaced")}
            for record in known:
                if record.doc_id not in fresh:
                    await self.catalog.delete(tenant.id, kb, record.doc_id)
            old = await self.index.point_alias(self.index.alias(tenant.id, kb), collection)
            await self.catalog.set_kb_info(KnowledgeBaseInfo(tenant.id, kb, embedder.name,
                                                             embedder.dimension))
            if old is not None:
                await self.index.drop(old)
        if self._on_change is not None:
            await self._on_change(tenant.id)
        return report

    async def remove(self, tenant: TenantConfig, kb: str, doc_id: str) -> bool:
        record = await self.catalog.get(tenant.id, kb, doc_id)
        if record is None:
            return False
        await self.index.write(self.index.alias(tenant.id, kb), [], record.chunk_ids)
        await self.catalog.delete(tenant.id, kb, doc_id)
        if self._on_change is not None:
            await self._on_change(tenant.id)
        return True

    async def _run(self, tenant: TenantConfig, kb: str, collection: str,
                   documents: AsyncIterator[SourceDocument | SourceFailure],
                   progress: Progress | None, force: bool = False) -> IngestReport:
        report = IngestReport()
        embedder = self.embedder_for(tenant)
        to_embed: asyncio.Queue[_Prepared | None] = asyncio.Queue(maxsize=256)
        to_write: asyncio.Queue[_Prepared | None] = asyncio.Queue(maxsize=256)

        def done(outcome: IngestOutcome) -> None:
            report.outcomes.append(outcome)
            if progress is not None:
                progress(outcome)

        async def prepare() -> None:
            try:
                async for item in documents:
                    if isinstance(item, SourceFailure):
                        done(IngestOutcome(item.source, "failed", reason=item.reason))
                        continue
                    prepared = await self._prepare(tenant, kb, embedder, item, force)
                    if isinstance(prepared, IngestOutcome):
                        done(prepared)
                    else:
                        await to_embed.put(prepared)
            finally:
                await to_embed.put(None)

        async def embed() -> None:
            finished = False
            try:
                while not finished:
                    first = await to_embed.get()
                    if first is None:
                        break
                    batch, size = [first], len(first.chunks)
                    while size < EMBED_BATCH and not to_embed.empty():
                        item = to_embed.get_nowait()
                        if item is None:
                            finished = True
                            break
                        batch.append(item)
                        size += len(item.chunks)
                    vectors = await embedder.embed_documents(
                        [c.embed_text for p in batch for c in p.chunks])
                    offset = 0
                    for prepared in batch:
                        prepared.vectors = vectors[offset:offset + len(prepared.chunks)]
                        offset += len(prepared.chunks)
                        await to_write.put(prepared)
            finally:
                await to_write.put(None)

        async def write() -> None:
            pending: list[_Prepared] = []
            while True:
                item = await to_write.get()
                if item is not None:
                    pending.append(item)
                if pending and (item is None
                                or sum(len(p.chunks) for p in pending) >= WRITE_BATCH):
                    await self._write(tenant, collection, pending, done)
                    pending = []
                if item is None:
                    return

        await asyncio.gather(prepare(), embed(), write())
        for outcome in report.outcomes:
            metrics.INGESTED_DOCUMENTS.labels(tenant.id, outcome.status).inc()
        if not report.count("failed"):
            metrics.LAST_INGEST.labels(tenant.id).set(time.time())
        try:
            await self.catalog.record_run(IngestRun(
                tenant.id, kb, datetime.now(UTC), report.summary(),
                tuple((o.source, o.reason) for o in report.outcomes
                      if o.status == "failed")[:20]))
        except Exception as exc:  # the documents are in; the record is for the console
            log.warning("the ingestion run could not be recorded: %s", exc,
                        extra={"tenant": tenant.id})
        return report

    async def _prepare(self, tenant: TenantConfig, kb: str, embedder: Embedder,
                       item: SourceDocument, force: bool) -> _Prepared | IngestOutcome:
        settings = (f"{embedder.name}|{effective_chunk_tokens(tenant, embedder)}|"
                    f"{tenant.knowledge.chunk_overlap}|{','.join(item.tags)}|{item.title}")
        signature = hashlib.sha256(item.content + settings.encode()).hexdigest()
        doc_id = document_id(tenant.id, kb, item.source)
        existing = await self.catalog.get(tenant.id, kb, doc_id)
        if force:
            existing = None
        if existing is not None and existing.signature == signature:
            return IngestOutcome(item.source, "unchanged", len(existing.chunk_ids),
                                 doc_id=doc_id)
        def extract_and_chunk() -> tuple[ExtractedDocument, list[Chunk]]:
            """CPU work (parsing, tokenizing): runs in a worker thread, off the loop."""
            document = extract(item.source, item.content, item.content_type,
                               tenant.knowledge.max_file_mb * 1024 * 1024)
            if item.title:
                document = ExtractedDocument(item.title, document.sections)
            return document, chunk_document(
                doc_id, document, effective_chunk_tokens(tenant, embedder),
                tenant.knowledge.chunk_overlap, embedder.count_tokens)

        try:
            document, chunks = await asyncio.to_thread(extract_and_chunk)
        except ExtractionError as exc:
            return IngestOutcome(item.source, "failed", reason=str(exc), doc_id=doc_id)
        new_ids = [c.id for c in chunks]
        kept = set(new_ids)
        stale = [c for c in (existing.chunk_ids if existing else []) if c not in kept]
        record = DocumentRecord(
            tenant=tenant.id, kb=kb, doc_id=doc_id, source=item.source, title=document.title,
            url=item.url, signature=signature, chunk_ids=new_ids,
            ingested_at=datetime.now(UTC), origin=item.origin, tags=list(item.tags))
        return _Prepared(record, chunks, stale, "replaced" if existing else "added")

    async def _write(self, tenant: TenantConfig, collection: str, batch: list[_Prepared],
                     done: Progress) -> None:
        points: list[IndexPoint] = []
        stale: list[str] = []
        avg_terms = effective_chunk_tokens(tenant, self.embedder_for(tenant)) * 0.6
        for prepared in batch:
            assert prepared.vectors is not None
            record = prepared.record
            for chunk, vector in zip(prepared.chunks, prepared.vectors, strict=True):
                points.append(IndexPoint(chunk.id, vector, encode_document(
                    chunk.embed_text, avg_terms), {
                    "tenant": tenant.id, "kb": record.kb, "doc_id": record.doc_id,
                    "source": record.source, "title": record.title, "url": record.url,
                    "headings": list(chunk.headings), "page": chunk.page,
                    "tags": record.tags, "content_hash": chunk.content_hash,
                    "position": chunk.position, "text": chunk.text, "origin": record.origin,
                    "ingested_at": record.ingested_at.isoformat()}))
            stale += prepared.stale_ids
        await self.index.write(collection, points, stale)
        await self.catalog.put_many([p.record for p in batch])
        for prepared in batch:
            done(IngestOutcome(prepared.record.source, prepared.status, len(prepared.chunks),
                               doc_id=prepared.record.doc_id))

    async def _remove_missing(self, tenant: TenantConfig, kb: str, alias: str,
                              sources: list[str], root: Path, report: IngestReport,
                              progress: Progress | None) -> None:
        seen = {o.source for o in report.outcomes}
        origins = {s if is_url(s) else source_name(root / s, root, root / s) for s in sources}
        failed_origins = {o.source for o in report.outcomes if o.status == "failed"}
        for record in await self.catalog.list(tenant.id, kb):
            if record.origin in origins and record.origin not in failed_origins \
                    and record.source not in seen:
                await self.index.write(alias, [], record.chunk_ids)
                await self.catalog.delete(tenant.id, kb, record.doc_id)
                outcome = IngestOutcome(record.source, "removed", doc_id=record.doc_id)
                report.outcomes.append(outcome)
                if progress is not None:
                    progress(outcome)

