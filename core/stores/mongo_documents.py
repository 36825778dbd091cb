"""The document catalog in MongoDB: ``documents`` and ``knowledge_bases`` collections."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from pymongo import ASCENDING, IndexModel, ReplaceOne
from pymongo.asynchronous.database import AsyncDatabase

from core.knowledge.catalog import IngestRun, KnowledgeBaseInfo
from core.knowledge.models import DocumentRecord

Document = dict[str, Any]


def _id(tenant: str, kb: str, doc_id: str) -> str:
    return f"{tenant}:{kb}:{doc_id}"


class MongoCatalog:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._docs = db["documents"]
        self._kbs = db["knowledge_bases"]
        self._runs = db["ingest_runs"]

    INDEXES = {"documents": [
        IndexModel([("tenant", ASCENDING), ("kb", ASCENDING), ("source", ASCENDING)],
                   name="tenant_kb_source"),
        IndexModel([("tenant", ASCENDING), ("origin", ASCENDING)], name="tenant_origin"),
    ]}
    """The indexes ``ensure_indexes`` creates, per collection (``deploy plan`` checks them)."""

    async def ensure_indexes(self) -> None:
        await self._docs.create_indexes(self.INDEXES["documents"])

    async def get(self, tenant: str, kb: str, doc_id: str) -> DocumentRecord | None:
        doc = await self._docs.find_one({"_id": _id(tenant, kb, doc_id)}, {"_id": 0})
        return DocumentRecord(**doc) if doc else None

    async def put(self, record: DocumentRecord) -> None:
        await self._docs.replace_one({"_id": _id(record.tenant, record.kb, record.doc_id)},
                                     {"_id": _id(record.tenant, record.kb, record.doc_id),
                                      **asdict(record)}, upsert=True)

    async def put_many(self, records: list[DocumentRecord]) -> None:
        if records:
            await self._docs.bulk_write([
                ReplaceOne({"_id": _id(r.tenant, r.kb, r.doc_id)},
                           {"_id": _id(r.tenant, r.kb, r.doc_id), **asdict(r)}, upsert=True)
                for r in records], ordered=False)

    async def delete(self, tenant: str, kb: str, doc_id: str) -> None:
        await self._docs.delete_one({"_id": _id(tenant, kb, doc_id)})

    async def list(self, tenant: str, kb: str | None = None) -> list[DocumentRecord]:
        query: Document = {"tenant": tenant}
        if kb is not None:
            query["kb"] = kb
        docs = await self._docs.find(query, {"_id": 0}).sort("source", ASCENDING).to_list()
        return [DocumentRecord(**d) for d in docs]

    async def count(self, tenant: str) -> int:
        return await self._docs.count_documents({"tenant": tenant})

    async def record_run(self, run: IngestRun) -> None:
        await self._runs.replace_one({"_id": f"{run.tenant}:{run.kb}"}, {
            "_id": f"{run.tenant}:{run.kb}", "tenant": run.tenant, "kb": run.kb,
            "at": run.at, "summary": run.summary,
            "failed": [list(f) for f in run.failed]}, upsert=True)

    async def last_run(self, tenant: str, kb: str) -> IngestRun | None:
        doc = await self._runs.find_one({"_id": f"{tenant}:{kb}"})
        if doc is None:
            return None
        return IngestRun(doc["tenant"], doc["kb"], doc["at"], dict(doc["summary"]),
                         tuple((str(s), str(r)) for s, r in doc.get("failed", [])))

    async def kb_info(self, tenant: str, kb: str) -> KnowledgeBaseInfo | None:
        doc = await self._kbs.find_one({"_id": f"{tenant}:{kb}"}, {"_id": 0})
        return KnowledgeBaseInfo(**doc) if doc else None

    async def set_kb_info(self, info: KnowledgeBaseInfo) -> None:
        await self._kbs.replace_one({"_id": f"{info.tenant}:{info.kb}"},
                                    {"_id": f"{info.tenant}:{info.kb}", **asdict(info)},
                                    upsert=True)
