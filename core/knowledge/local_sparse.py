"""Sparse (BM25) search for Qdrant's local mode, which scans every point in Python.

Measured here: local-mode sparse queries take ~110 ms at 10,000 chunks, against ~5 ms for
dense ones. This keeps an inverted index per collection in numpy, built from the
collection's own stored sparse vectors (so nothing extra is persisted and it survives
restarts) and rebuilt lazily after writes. IDF follows Qdrant's formula, so scores match
what a Qdrant server returns for the same vectors. Server mode does not use this.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from qdrant_client import AsyncQdrantClient

from core.knowledge.sparse import SparseVector

_SCROLL_PAGE = 2048


@dataclass(slots=True)
class _Postings:
    ids: list[str] = field(default_factory=list)
    sources: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=object))
    tags: list[frozenset[str]] = field(default_factory=list)
    terms: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    docs: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    weights: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float32))


class LocalSparseIndex:
    def __init__(self) -> None:
        self._postings: dict[str, _Postings] = {}

    def invalidate(self, collection: str) -> None:
        self._postings.pop(collection, None)

    async def _load(self, client: AsyncQdrantClient, collection: str) -> _Postings:
        postings = self._postings.get(collection)
        if postings is not None:
            return postings
        ids: list[str] = []
        sources: list[str] = []
        tags: list[frozenset[str]] = []
        terms: list[np.ndarray] = []
        docs: list[np.ndarray] = []
        weights: list[np.ndarray] = []
        offset = None
        while True:
            points, offset = await client.scroll(
                collection, limit=_SCROLL_PAGE, offset=offset,
                with_payload=["source", "tags"], with_vectors=["sparse"])
            for point in points:
                vector = (point.vector or {}).get("sparse")  # type: ignore[union-attr]
                index = len(ids)
                ids.append(str(point.id))
                payload = point.payload or {}
                sources.append(str(payload.get("source", "")))
                tags.append(frozenset(payload.get("tags") or ()))
                if vector is not None and vector.indices:  # type: ignore[union-attr]
                    terms.append(np.asarray(vector.indices, dtype=np.int64))  # type: ignore[union-attr]
                    weights.append(np.asarray(vector.values, dtype=np.float32))  # type: ignore[union-attr]
                    docs.append(np.full(len(vector.indices), index, dtype=np.int64))  # type: ignore[union-attr]
            if offset is None:
                break
        all_terms = np.concatenate(terms) if terms else np.zeros(0, dtype=np.int64)
        order = np.argsort(all_terms, kind="stable")
        postings = _Postings(
            ids=ids, sources=np.asarray(sources, dtype=object), tags=tags,
            terms=all_terms[order],
            docs=(np.concatenate(docs) if docs else np.zeros(0, dtype=np.int64))[order],
            weights=(np.concatenate(weights) if weights
                     else np.zeros(0, dtype=np.float32))[order])
        self._postings[collection] = postings
        return postings

    async def search(self, client: AsyncQdrantClient, collection: str, query: SparseVector,
                     limit: int, sources: list[str] | None, tags: list[str] | None
                     ) -> list[tuple[str, float]]:
        p = await self._load(client, collection)
        total = len(p.ids)
        if total == 0 or not query.indices:
            return []
        scores = np.zeros(total, dtype=np.float32)
        for term, q_weight in zip(query.indices, query.values, strict=True):
            lo = int(np.searchsorted(p.terms, term, side="left"))
            hi = int(np.searchsorted(p.terms, term, side="right"))
            if hi == lo:
                continue
            df = hi - lo
            idf = math.log(1 + (total - df + 0.5) / (df + 0.5))
            np.add.at(scores, p.docs[lo:hi], p.weights[lo:hi] * (idf * q_weight))
        if sources:
            scores[~np.isin(p.sources, sources)] = 0
        if tags:
            wanted = set(tags)
            scores[[i for i, t in enumerate(p.tags) if not t & wanted]] = 0
        candidates = np.flatnonzero(scores > 0)
        if candidates.size > limit:
            candidates = candidates[np.argpartition(-scores[candidates], limit - 1)[:limit]]
        ranked = candidates[np.argsort(-scores[candidates], kind="stable")]
        return [(p.ids[i], float(scores[i])) for i in ranked]
