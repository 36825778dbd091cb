"""Concurrent turns' queries share ONNX calls, and get exactly the vectors they would
get alone."""

from __future__ import annotations

import asyncio

import numpy as np

from core.knowledge.embedders import QUERY_BATCH, MiniLMEmbedder


class Counted(MiniLMEmbedder):
    """Counts the ONNX batches (observation only: every call is the real embedder's)."""

    batches: list[int]

    def embed_sync(self, texts: list[str]) -> np.ndarray:
        self.batches.append(len(texts))
        return super().embed_sync(texts)


async def test_concurrent_queries_are_embedded_in_shared_batches() -> None:
    embedder = Counted()
    embedder.batches = []
    questions = [f"How long do refunds take for order {n}?" for n in range(40)]
    alone = embedder.embed_sync(questions)
    embedder.batches.clear()
    vectors = await asyncio.gather(*(embedder.embed_query(q) for q in questions))
    assert all(np.allclose(v, alone[i], atol=1e-5) for i, v in enumerate(vectors))
    assert sum(embedder.batches) == 40
    assert len(embedder.batches) <= 40 // QUERY_BATCH + 2  # not one call per query
    assert max(embedder.batches) <= QUERY_BATCH
    embedder.batches.clear()
    assert np.allclose(await embedder.embed_query(questions[0]), alone[0], atol=1e-5)
    assert embedder.batches == [1]  # a lone query goes at once
