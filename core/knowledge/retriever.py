"""Hybrid retrieval over a tenant's knowledge: rewrite, search, fuse, threshold, rerank.

The tenant decides the collection (its own alias), so no query or filter can reach
another tenant's chunks. Passages below the tenant's ``score_threshold`` (cosine
similarity) are dropped, so "nothing relevant" is an empty list, not a weak guess.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Literal, Protocol

from core.knowledge.base import HistoryTurn, Passage, SearchFilters
from core.knowledge.catalog import DocumentCatalog
from core.knowledge.embedders import Embedder
from core.knowledge.fusion import Fused, fuse
from core.knowledge.index import QdrantIndex, build_filter
from core.knowledge.rewrite import rewrite_query
from core.knowledge.sparse import encode_query
from core.sessions.history import estimate_tokens
from core.tenants.models import TenantConfig
from observability.tracing import span as child_span

Mode = Literal["hybrid", "dense", "sparse"]
_LOADED_TTL_S = 5.0


class Reranker(Protocol):
    """Reorders fused passages (a cross-encoder, an LLM judge...). Pluggable."""

    async def rerank(self, query: str, passages: list[Passage]) -> list[Passage]: ...


class KeepOrder:
    async def rerank(self, query: str, passages: list[Passage]) -> list[Passage]:
        return passages


def _passage(f: Fused) -> Passage:
    p = f.payload
    return Passage(text=str(p.get("text", "")), title=str(p.get("title", "")),
                   source=str(p.get("source", "")), url=str(p.get("url", "")),
                   score=f.score, similarity=f.similarity, chunk_id=f.chunk_id,
                   doc_id=str(p.get("doc_id", "")), headings=tuple(p.get("headings") or ()),
                   page=p.get("page"), tags=tuple(p.get("tags") or ()))


class KnowledgeRetriever:
    def __init__(self, index: QdrantIndex, catalog: DocumentCatalog,
                 embedder_for: Callable[[TenantConfig], Embedder],
                 reranker: Reranker | None = None, kb: str = "default") -> None:
        self.index = index
        self._catalog = catalog
        self._embedder_for = embedder_for
        self._reranker = reranker or KeepOrder()
        self._kb = kb
        self._loaded: dict[str, tuple[float, bool]] = {}

    def forget_loaded(self, tenant_id: str) -> None:
        self._loaded.pop(tenant_id, None)

    async def has_knowledge(self, tenant: TenantConfig) -> bool:
        cached = self._loaded.get(tenant.id)
        if cached and time.monotonic() - cached[0] < _LOADED_TTL_S:
            return cached[1]
        loaded = await self._catalog.count(tenant.id) > 0
        self._loaded[tenant.id] = (time.monotonic(), loaded)
        return loaded

    async def search(self, tenant: TenantConfig, query: str,
                     history: Sequence[HistoryTurn] = (),
                     filters: SearchFilters | None = None, *, mode: Mode = "hybrid",
                     top_k: int | None = None, threshold: float | None = None,
                     budget_tokens: int | None = None) -> list[Passage]:
        with child_span("retrieve", attributes={
                "switchboard.tenant": tenant.id, "switchboard.mode": mode}) as span:
            found = await self._search(tenant, query, history, filters, mode=mode,
                                       top_k=top_k, threshold=threshold,
                                       budget_tokens=budget_tokens)
            span.set_attribute("switchboard.passages", len(found))
            return found

    async def _search(self, tenant: TenantConfig, query: str,
                      history: Sequence[HistoryTurn], filters: SearchFilters | None, *,
                      mode: Mode, top_k: int | None, threshold: float | None,
                      budget_tokens: int | None) -> list[Passage]:
        settings = tenant.knowledge
        alias = self.index.alias(tenant.id, self._kb)
        if not await self.index.exists(alias):
            return []
        embedder = self._embedder_for(tenant)
        text = rewrite_query(query, history)
        vector = await embedder.embed_query(text)
        k = top_k or settings.top_k
        sources = list(filters.sources) if filters and filters.sources else None
        tags = list(filters.tags) if filters and filters.tags else None
        sparse_query = encode_query(text) if mode != "dense" else encode_query("")
        dense, sparse = await self.index.search(alias, vector, sparse_query, max(50, 4 * k),
                                                build_filter(sources, tags), sources=sources,
                                                tags=tags)
        fused = fuse(dense, sparse if mode != "dense" else [], vector,
                     settings.hybrid_alpha, mode)
        floor = settings.score_threshold if threshold is None else threshold
        kept = [f for f in fused if f.similarity >= floor][:k * 4]
        missing = [f.chunk_id for f in kept if not f.payload]
        if missing:
            found = await self.index.payloads(alias, missing)
            kept = [f if f.payload else Fused(f.chunk_id, f.score, f.similarity,
                                              found.get(f.chunk_id, {}))
                    for f in kept if f.payload or f.chunk_id in found]
        passages = await self._reranker.rerank(text, [_passage(f) for f in kept])
        return _within_budget(passages[:k], budget_tokens or settings.context_tokens)

    async def ping(self) -> None:
        await self.index.ping()


def _within_budget(passages: list[Passage], budget: int) -> list[Passage]:
    kept: list[Passage] = []
    spent = 0
    for passage in passages:
        cost = estimate_tokens(passage.text)
        if kept and spent + cost > budget:
            break
        kept.append(passage)
        spent += cost
    return kept
