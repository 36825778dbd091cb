"""The catalog of ingested documents and knowledge bases (which chunks belong to what).

It makes ingestion idempotent (a document whose signature has not changed is skipped),
lets a document be listed and removed, and records which embedder built each knowledge
base so vectors of two models are never mixed.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Protocol

from core.knowledge.models import DocumentRecord


@dataclass(frozen=True, slots=True)
class KnowledgeBaseInfo:
    tenant: str
    kb: str
    embedder: str
    dimension: int


@dataclass(frozen=True, slots=True)
class IngestRun:
    """How a knowledge base's last ingestion ended (the console's documents page)."""

    tenant: str
    kb: str
    at: datetime
    summary: dict[str, int]
    failed: tuple[tuple[str, str], ...] = ()
    """(source, reason) of the documents that failed, the first 20."""


class DocumentCatalog(Protocol):
    async def get(self, tenant: str, kb: str, doc_id: str) -> DocumentRecord | None: ...

    async def put(self, record: DocumentRecord) -> None: ...

    async def put_many(self, records: list[DocumentRecord]) -> None:
        """Store several records in one round trip."""
        ...

    async def delete(self, tenant: str, kb: str, doc_id: str) -> None: ...

    async def list(self, tenant: str, kb: str | None = None) -> list[DocumentRecord]: ...

    async def count(self, tenant: str) -> int: ...

    async def kb_info(self, tenant: str, kb: str) -> KnowledgeBaseInfo | None: ...

    async def set_kb_info(self, info: KnowledgeBaseInfo) -> None: ...

    async def record_run(self, run: IngestRun) -> None: ...

    async def last_run(self, tenant: str, kb: str) -> IngestRun | None: ...


class MemoryCatalog:
    """An in-process catalog, for evaluation runs that must not touch real data."""

    def __init__(self) -> None:
        self._docs: dict[tuple[str, str, str], DocumentRecord] = {}
        self._kbs: dict[tuple[str, str], KnowledgeBaseInfo] = {}
        self._runs: dict[tuple[str, str], IngestRun] = {}

    async def record_run(self, run: IngestRun) -> None:
        self._runs[(run.tenant, run.kb)] = run

    async def last_run(self, tenant: str, kb: str) -> IngestRun | None:
        return self._runs.get((tenant, kb))

    async def get(self, tenant: str, kb: str, doc_id: str) -> DocumentRecord | None:
        record = self._docs.get((tenant, kb, doc_id))
        return replace(record) if record else None

    async def put(self, record: DocumentRecord) -> None:
        self._docs[(record.tenant, record.kb, record.doc_id)] = replace(record)

    async def put_many(self, records: list[DocumentRecord]) -> None:
        for record in records:
            await self.put(record)

    async def delete(self, tenant: str, kb: str, doc_id: str) -> None:
        self._docs.pop((tenant, kb, doc_id), None)

    async def list(self, tenant: str, kb: str | None = None) -> list[DocumentRecord]:
        return [replace(r) for (t, k, _), r in sorted(self._docs.items())
                if t == tenant and kb in (None, k)]

    async def count(self, tenant: str) -> int:
        return sum(1 for (t, _, _) in self._docs if t == tenant)

    async def kb_info(self, tenant: str, kb: str) -> KnowledgeBaseInfo | None:
        return self._kbs.get((tenant, kb))

    async def set_kb_info(self, info: KnowledgeBaseInfo) -> None:
        self._kbs[(info.tenant, info.kb)] = info
