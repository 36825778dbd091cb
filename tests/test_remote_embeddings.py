"""OpenAI-compatible embeddings through the real client, against the local fake."""

from __future__ import annotations

import numpy as np
import pytest

from core.knowledge.embedders import EmbedderError, EmbedderRegistry, OpenAIEmbedder
from tests.conftest import tenant
from tests.fakes.openai_server import FakeOpenAI


async def test_vectors_arrive_normalised_in_input_order(llm: FakeOpenAI) -> None:
    embedder = OpenAIEmbedder("text-embedding-3-small", 8, "sk-test", llm.url, batch_size=2)
    vectors = await embedder.embed_documents(["alpha", "beta", "alpha"])
    assert vectors.shape == (3, 8)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0)
    assert np.allclose(vectors[0], vectors[2]) and not np.allclose(vectors[0], vectors[1])
    assert [len(r["input"]) for r in llm.requests] == [2, 1]


async def test_a_wrong_dimension_is_a_clear_error(llm: FakeOpenAI) -> None:
    embedder = OpenAIEmbedder("text-embedding-3-small", 1536, "sk-test", llm.url)
    with pytest.raises(EmbedderError, match="returned 8 dimensions"):
        await embedder.embed_query("hello")


def test_registry_needs_a_key_and_a_dimension() -> None:
    registry = EmbedderRegistry()
    with pytest.raises(EmbedderError, match="needs OPENAI_API_KEY"):
        registry.for_tenant(tenant("acme", knowledge={"embedder": "openai:text-embedding-3-small"}))
    with pytest.raises(EmbedderError, match="embedding_dimension"):
        EmbedderRegistry("sk").for_tenant(tenant("acme", knowledge={"embedder": "openai:custom"}))
