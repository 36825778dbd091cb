"""Knowledge administration for channels that manage documents (the admin API): list,
add and remove a tenant's documents, through the knowledge service the engine holds."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from core.engine.deps import EngineDeps
from core.knowledge.ingest import IngestReport, Progress
from core.knowledge.models import DocumentRecord, SourceDocument
from core.knowledge.service import KnowledgeService
from core.tenants.models import TenantConfig


class KnowledgeUnavailable(RuntimeError):
    """This process has no knowledge service (nothing to list, add or remove)."""


@dataclass(frozen=True, slots=True)
class TextDocument:
    """A document given as text (Markdown or plain): its title, text and source name."""

    title: str
    text: str
    source: str = ""


@dataclass(frozen=True, slots=True)
class FileDocument:
    """An uploaded file: its name (which decides its format and is its source, so a new
    upload of the same name replaces the old one), content and declared type."""

    name: str
    content: bytes
    content_type: str = ""


@dataclass(frozen=True, slots=True)
class SourceView:
    """A cited passage in its document, for a page that shows it: the document's chunks
    in order (at most ``MAX_VIEW_CHUNKS``) and which one was cited."""

    title: str
    source: str
    url: str
    chunks: tuple[str, ...]
    cited: int
    headings: tuple[str, ...] = ()
    page: int | None = None


MAX_VIEW_CHUNKS = 200


def _service(deps: EngineDeps) -> KnowledgeService:
    if deps.knowledge is None:
        raise KnowledgeUnavailable("knowledge is not available in this process")
    return deps.knowledge


async def documents(deps: EngineDeps, tenant: TenantConfig) -> list[DocumentRecord]:
    return await _service(deps).catalog.list(tenant.id)


async def source_view(deps: EngineDeps, tenant: TenantConfig, chunk_id: str
                      ) -> SourceView | None:
    """The document around one of the tenant's chunks; None if the tenant has no such
    chunk (another tenant's id finds nothing: the catalog and the index are the
    tenant's own)."""
    service = _service(deps)
    for record in await service.catalog.list(tenant.id):
        if chunk_id not in record.chunk_ids:
            continue
        ids = record.chunk_ids[:MAX_VIEW_CHUNKS]
        if chunk_id not in ids:
            ids = [chunk_id]
        payloads = await service.index.payloads(service.index.alias(tenant.id, record.kb),
                                                ids)
        cited = payloads.get(chunk_id, {})
        return SourceView(title=record.title or record.source, source=record.source,
                          url=record.url,
                          chunks=tuple(str(payloads.get(i, {}).get("text", "")) for i in ids),
                          cited=ids.index(chunk_id),
                          headings=tuple(cited.get("headings") or ()),
                          page=cited.get("page"))
    return None


async def ingest(deps: EngineDeps, tenant: TenantConfig, urls: Sequence[str],
                 texts: Sequence[TextDocument], kb: str, tags: tuple[str, ...]
                 ) -> IngestReport:
    service = _service(deps)
    report = await service.ingestor.ingest(tenant, list(urls), service.root, kb=kb,
                                           tags=tags) if urls else None
    if texts:
        inline = await service.ingestor.ingest_stream(tenant, _inline(texts, tags), kb=kb)
        if report is None:
            return inline
        report.outcomes += inline.outcomes
    return report if report is not None else IngestReport()


async def ingest_sources(deps: EngineDeps, tenant: TenantConfig, sources: Sequence[str],
                         kb: str, reindex: bool, progress: Progress | None) -> IngestReport:
    """Files, folders, URL lists and URLs as ``switchboard ingest`` names them (paths
    absolute, or relative to the knowledge root); ``reindex`` rebuilds the base."""
    service = _service(deps)
    if reindex:
        return await service.ingestor.reindex(tenant, list(sources), service.root, kb=kb,
                                              progress=progress)
    return await service.ingestor.ingest(tenant, list(sources), service.root, kb=kb,
                                         progress=progress)


async def ingest_files(deps: EngineDeps, tenant: TenantConfig, files: Sequence[FileDocument],
                       kb: str, tags: tuple[str, ...]) -> IngestReport:
    """Uploaded files, each succeeding or failing on its own like a file on disk."""
    async def stream() -> AsyncIterator[SourceDocument]:
        for file in files:
            yield SourceDocument(source=f"inline:{file.name}", content=file.content,
                                 content_type=file.content_type, title="", tags=tags)
    return await _service(deps).ingestor.ingest_stream(tenant, stream(), kb=kb)


async def remove(deps: EngineDeps, tenant: TenantConfig, doc_id: str) -> bool:
    service = _service(deps)
    for record in await service.catalog.list(tenant.id):
        if record.doc_id == doc_id:
            await service.ingestor.remove(tenant, record.kb, doc_id)
            return True
    return False


async def _inline(texts: Sequence[TextDocument], tags: tuple[str, ...]
                  ) -> AsyncIterator[SourceDocument]:
    for document in texts:
        yield SourceDocument(source=f"inline:{document.source or document.title}",
                             content=document.text.encode(), content_type="text/markdown",
                             title=document.title, tags=tags)
