"""The vector index: one Qdrant collection per tenant knowledge base, behind an alias.

Searches and writes go to the alias ``sb_<tenant>_<kb>``; a full re-index fills a new
collection and moves the alias in one atomic operation while the old collection keeps
serving, then drops it. Each collection holds a dense vector (cosine) and a sparse BM25
vector (IDF kept by Qdrant). Local mode (``path``) serves one process; a server
(``url``) serves all. Every call has a timeout; failures raise :class:`KnowledgeIndexError`.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from qdrant_client import AsyncQdrantClient
from qdrant_client import models as qm

from core.knowledge.local_search import LocalSearchIndex
from core.knowledge.sparse import SparseVector

DENSE = "dense"
SPARSE = "sparse"
_PAYLOAD_INDEXES = {"doc_id": qm.PayloadSchemaType.KEYWORD,
                    "source": qm.PayloadSchemaType.KEYWORD,
                    "tags": qm.PayloadSchemaType.KEYWORD}


class KnowledgeIndexError(RuntimeError):
    pass


@dataclass(frozen=True, slots=True)
class Hit:
    """A candidate. ``payload`` may be empty (local mode fills it for final hits only);
    ``cosine`` is the dense similarity when known without the vector."""

    chunk_id: str
    score: float
    payload: dict[str, Any]
    dense: list[float] | None = None
    cosine: float | None = None


@dataclass(frozen=True, slots=True)
class IndexPoint:
    chunk_id: str
    dense: np.ndarray
    sparse: SparseVector
    payload: dict[str, Any]


def build_filter(sources: list[str] | None, tags: list[str] | None) -> qm.Filter | None:
    must: list[qm.Condition] = []
    if sources:
        must.append(qm.FieldCondition(key="source", match=qm.MatchAny(any=sources)))
    if tags:
        must.append(qm.FieldCondition(key="tags", match=qm.MatchAny(any=tags)))
    return qm.Filter(must=must) if must else None


class QdrantIndex:
    def __init__(self, *, url: str = "", api_key: str = "", path: Path | None = None,
                 timeout_s: int = 10, namespace: str = "sb") -> None:
        self._url, self._api_key, self._path, self._timeout = url, api_key, path, timeout_s
        self._client: AsyncQdrantClient | None = None
        self._open_lock = asyncio.Lock()
        self.server_mode = bool(url)
        self._namespace = namespace
        self._local = LocalSearchIndex()
        self._aliases: dict[str, str] = {}
        self.description = (f"Qdrant at {url}" if url else
                            f"Qdrant local mode, data in {path or 'memory'}")

    async def client(self) -> AsyncQdrantClient:
        if self._client is None:
            async with self._open_lock:
                if self._client is None:
                    self._client = await asyncio.to_thread(self._open)
        return self._client

    def _open(self) -> AsyncQdrantClient:
        if self._url:
            return AsyncQdrantClient(url=self._url, api_key=self._api_key or None,
                                     timeout=self._timeout)
        if self._path is None:
            return AsyncQdrantClient(location=":memory:")
        self._path.mkdir(parents=True, exist_ok=True)
        try:
            return AsyncQdrantClient(path=str(self._path))
        except RuntimeError as exc:
            raise KnowledgeIndexError(
                f"the local knowledge store {self._path} is open in another Switchboard "
                "process (local mode serves one process); stop that process or set "
                "QDRANT_URL to share a Qdrant server") from exc

    async def _call(self, what: str, coro: Any) -> Any:
        try:
            return await asyncio.wait_for(coro, self._timeout)
        except TimeoutError:
            raise KnowledgeIndexError(f"Qdrant {what} timed out after {self._timeout}s") \
                from None
        except KnowledgeIndexError:
            raise
        except Exception as exc:
            raise KnowledgeIndexError(f"Qdrant {what} failed: {exc}") from exc

    def alias(self, tenant: str, kb: str) -> str:
        """The stable name every read and write of this knowledge base goes through."""
        return f"{self._namespace}_{tenant}_{kb}"

    async def exists(self, alias: str) -> bool:
        """Whether the alias exists; a positive answer is remembered (aliases only move)."""
        if alias in self._aliases:
            return True
        client = await self.client()
        aliases = await self._call("get_aliases", client.get_aliases())
        self._aliases.update({a.alias_name: a.collection_name for a in aliases.aliases})
        return alias in self._aliases

    async def create(self, tenant: str, kb: str, dimension: int) -> str:
        """A new physical collection for this knowledge base (not yet behind the alias)."""
        client = await self.client()
        stamp = f"{time.strftime('%Y%m%d%H%M%S')}_{time.time_ns() % 10**6}"
        name = f"{self.alias(tenant, kb)}_{stamp}"
        await self._call("create_collection", client.create_collection(
            name, vectors_config={DENSE: qm.VectorParams(size=dimension,
                                                         distance=qm.Distance.COSINE)},
            sparse_vectors_config={SPARSE: qm.SparseVectorParams(modifier=qm.Modifier.IDF)}))
        if self.server_mode:
            for field, schema in _PAYLOAD_INDEXES.items():
                await self._call("create_payload_index", client.create_payload_index(
                    name, field_name=field, field_schema=schema))
        return name

    async def point_alias(self, alias: str, collection: str) -> str | None:
        """Move the alias to ``collection`` atomically; return the collection it left."""
        client = await self.client()
        aliases = await self._call("get_aliases", client.get_aliases())
        old = next((a.collection_name for a in aliases.aliases if a.alias_name == alias), None)
        operations: list[qm.AliasOperations] = []
        if old is not None:
            operations.append(qm.DeleteAliasOperation(delete_alias=qm.DeleteAlias(
                alias_name=alias)))
        operations.append(qm.CreateAliasOperation(create_alias=qm.CreateAlias(
            collection_name=collection, alias_name=alias)))
        await self._call("update_aliases", client.update_collection_aliases(
            change_aliases_operations=operations))
        self._aliases[alias] = collection
        return old

    async def drop(self, collection: str) -> None:
        client = await self.client()
        await self._call("delete_collection", client.delete_collection(collection))
        self._local.invalidate(collection)

    async def dimension(self, alias: str) -> int:
        client = await self.client()
        info = await self._call("get_collection", client.get_collection(alias))
        vectors = info.config.params.vectors
        return int(vectors[DENSE].size) if isinstance(vectors, dict) else 0

    async def write(self, collection: str, upserts: list[IndexPoint],
                    deletes: list[str]) -> None:
        """Upsert new chunks, then delete replaced ones, in one ordered request."""
        client = await self.client()
        operations: list[qm.UpdateOperation] = []
        if upserts:
            operations.append(qm.UpsertOperation(upsert=qm.PointsList(points=[
                qm.PointStruct(id=p.chunk_id, payload=p.payload, vector={
                    DENSE: p.dense.tolist(),
                    SPARSE: qm.SparseVector(indices=p.sparse.indices,
                                            values=p.sparse.values)})
                for p in upserts])))
        if deletes:
            operations.append(qm.DeleteOperation(delete=qm.PointIdsList(points=deletes)))
        if operations:
            await self._call("write", client.batch_update_points(
                collection, update_operations=operations, wait=True))
            self._local.invalidate(await self._physical(collection))

    async def set_tags(self, alias: str, chunk_ids: list[str], tags: list[str]) -> None:
        """Replace the ``tags`` payload of the given chunks (a document's re-tagging)."""
        if not chunk_ids:
            return
        client = await self.client()
        await self._call("set_payload", client.set_payload(
            alias, payload={"tags": tags}, points=qm.PointIdsList(points=list(chunk_ids)),
            wait=True))
        self._local.invalidate(await self._physical(alias))

    async def _physical(self, name: str) -> str:
        """The collection behind an alias (or the name itself when it is a collection)."""
        if name not in self._aliases:
            client = await self.client()
            aliases = await self._call("get_aliases", client.get_aliases())
            self._aliases.update({a.alias_name: a.collection_name for a in aliases.aliases})
        return self._aliases.get(name, name)

    async def search(self, alias: str, dense: np.ndarray, sparse: SparseVector, limit: int,
                     flt: qm.Filter | None = None, *, sources: list[str] | None = None,
                     tags: list[str] | None = None) -> tuple[list[Hit], list[Hit]]:
        """Dense and sparse candidates; sparse hits carry their dense vector.

        Server mode asks Qdrant for both in one request; local mode answers the sparse
        half from :class:`LocalSparseIndex` (``sources``/``tags`` repeat ``flt`` for it).
        """
        client = await self.client()
        dense_request = qm.QueryRequest(query=dense.tolist(), using=DENSE, limit=limit,
                                        filter=flt, with_payload=True)
        if not self.server_mode:
            local_dense, local_sparse = await self._call("search", self._local.search(
                client, await self._physical(alias), dense, sparse, limit, sources, tags))
            return ([Hit(h.chunk_id, h.score, {}, cosine=h.cosine) for h in local_dense],
                    [Hit(h.chunk_id, h.score, {}, cosine=h.cosine) for h in local_sparse])
        requests = [dense_request]
        if sparse.indices:
            requests.append(qm.QueryRequest(
                query=qm.SparseVector(indices=sparse.indices, values=sparse.values),
                using=SPARSE, limit=limit, filter=flt, with_payload=True,
                with_vector=[DENSE]))
        results = await self._call("query", client.query_batch_points(alias,
                                                                      requests=requests))
        return _hits(results[0].points), _hits(results[1].points) if len(results) > 1 else []

    async def payloads(self, alias: str, ids: list[str]) -> dict[str, dict[str, Any]]:
        """Payloads of the given chunks (for hits that came back without one)."""
        if not ids:
            return {}
        client = await self.client()
        known: dict[str, dict[str, Any]] = {}
        if not self.server_mode:
            known = self._local.payloads(await self._physical(alias))
            missing = [i for i in ids if i not in known]
        else:
            missing = ids
        found: dict[str, dict[str, Any]] = {}
        if missing:
            points = await self._call("retrieve", client.retrieve(alias, ids=missing,
                                                                  with_payload=True))
            found = {str(p.id): p.payload or {} for p in points}
            if not self.server_mode:
                known.update(found)
        return {i: known[i] if i in known else found[i] for i in ids
                if i in known or i in found}

    async def count(self, alias: str) -> int:
        client = await self.client()
        return int((await self._call("count", client.count(alias, exact=True))).count)

    async def ping(self) -> None:
        client = await self.client()
        await self._call("get_collections", client.get_collections())

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None


def _dense(vector: Any) -> list[float] | None:
    return vector.get(DENSE) if isinstance(vector, dict) else None


def _hits(points: list[qm.ScoredPoint]) -> list[Hit]:
    return [Hit(str(p.id), float(p.score), p.payload or {}, _dense(p.vector)) for p in points]
