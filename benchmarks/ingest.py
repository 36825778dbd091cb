"""Ingestion throughput against the raw embedder, and retrieval latency at 10,000 chunks.

1. Throughput: the same SciFact documents are (a) chunked and fed straight to the
   embedder (the raw baseline: embedding alone, batched and length-sorted) and (b) run
   through the full ingestion pipeline (extraction, chunking, embedding, BM25 vectors,
   Qdrant writes, catalog records). Both in the same run; the ratio is the figure.
2. Retrieval: the corpus is ingested until the tenant holds at least 10,000 chunks, on the
   embedded stack (Qdrant local mode on disk, the embedded MongoDB-wire server for the
   catalog); then the SciFact test queries run through the hybrid retriever with the
   tenant defaults. Latency includes the query embedding.

    python -m benchmarks.ingest [--docs 800] [--chunks 10000]

Reads ../shared/data/scifact; writes benchmarks/results/ingest.json.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.report import percentile, write_results
from bots.embedded_mongo import EmbeddedMongo
from core.knowledge.chunking import chunk_document
from core.knowledge.embedders import EmbedderRegistry
from core.knowledge.evaluation import load_beir
from core.knowledge.extract import extract
from core.knowledge.index import QdrantIndex
from core.knowledge.ingest import Ingestor, effective_chunk_tokens
from core.knowledge.models import SourceDocument, document_id
from core.knowledge.retriever import KnowledgeRetriever
from core.stores.mongo_client import MongoConnection
from core.stores.mongo_documents import MongoCatalog
from core.tenants.models import TenantConfig

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "scifact"



async def documents(corpus: list[dict[str, Any]]) -> AsyncIterator[SourceDocument]:
    for doc in corpus:
        yield SourceDocument(source=f"scifact:{doc['_id']}", content=doc["text"].encode(),
                             content_type="text/plain", title=doc["title"])


async def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--docs", type=int, default=800, help="documents for throughput")
    parser.add_argument("--chunks", type=int, default=10_000, help="chunks for retrieval")
    parser.add_argument("--dataset", default=str(DATA))
    args = parser.parse_args()
    dataset = load_beir(Path(args.dataset))
    tenant = TenantConfig.model_validate({"id": "bench", "name": "Bench"})
    embedders = EmbedderRegistry()
    embedder = embedders.for_tenant(tenant)
    workdir = Path(tempfile.mkdtemp(prefix="sb-ingest-bench-"))
    mongo_server = EmbeddedMongo(workdir / "mongo")
    mongo = MongoConnection(await mongo_server.start(), database="bench")
    index = QdrantIndex(path=workdir / "qdrant")
    catalog = MongoCatalog(mongo.db)
    ingestor = Ingestor(index, catalog, embedders.for_tenant)
    results: dict[str, Any] = {"when": datetime.now(UTC).isoformat(timespec="seconds")}
    try:
        sample = dataset.corpus[:args.docs]
        size = effective_chunk_tokens(tenant, embedder)
        chunks = []
        for doc in sample:
            extracted = extract("x.txt", doc["text"].encode())
            extracted = type(extracted)(doc["title"], extracted.sections)
            chunks += chunk_document(document_id("bench", "default", doc["_id"]), extracted,
                                     size, tenant.knowledge.chunk_overlap,
                                     embedder.count_tokens)
        await embedder.embed_documents([c.embed_text for c in chunks[:32]])
        started = time.perf_counter()
        await embedder.embed_documents([c.embed_text for c in chunks])
        raw = len(chunks) / (time.perf_counter() - started)
        started = time.perf_counter()
        report = await ingestor.ingest_stream(tenant, documents(sample))
        piped = sum(o.chunks for o in report.outcomes) / (time.perf_counter() - started)
        results["throughput"] = {"documents": len(sample), "chunks": len(chunks),
                                 "raw_embedder_chunks_per_s": round(raw, 1),
                                 "ingest_chunks_per_s": round(piped, 1),
                                 "ratio": round(piped / raw, 3)}
        print(f"throughput: raw embedder {raw:.1f} chunks/s, ingestion {piped:.1f} chunks/s "
              f"({piped / raw:.0%})", flush=True)

        rest = dataset.corpus[args.docs:]
        alias = index.alias("bench", "default")
        step = 400
        while await index.count(alias) < args.chunks and rest:
            batch, rest = rest[:step], rest[step:]
            await ingestor.ingest_stream(tenant, documents(batch))
            print(f"  indexed {await index.count(alias)} chunks", flush=True)
        total = await index.count(alias)
        retriever = KnowledgeRetriever(index, catalog, embedders.for_tenant)
        queries = [dataset.queries[q] for q in sorted(dataset.qrels)]
        for warm in queries[:10]:
            await retriever.search(tenant, warm)
        latency: dict[str, dict[str, float]] = {}
        for mode in ("dense", "hybrid"):
            times = []
            for query in queries:
                t0 = time.perf_counter()
                await retriever.search(tenant, query, mode=mode)
                times.append(time.perf_counter() - t0)
            latency[mode] = {"p50_ms": round(percentile(times, 50) * 1000, 2),
                             "p95_ms": round(percentile(times, 95) * 1000, 2)}
        t0 = time.perf_counter()
        for query in queries:
            await embedder.embed_query(query)
        embed_ms = (time.perf_counter() - t0) / len(queries) * 1000
        results["retrieval"] = {"chunks": total, "queries": len(queries),
                                "query_embedding_mean_ms": round(embed_ms, 2), **latency}
        print(f"retrieval at {total} chunks: hybrid p50 {latency['hybrid']['p50_ms']} ms, "
              f"p95 {latency['hybrid']['p95_ms']} ms (dense only p95 "
              f"{latency['dense']['p95_ms']} ms; query embedding {embed_ms:.1f} ms)")
        results["targets"] = {"ingest_at_least_85pct_of_embedder":
                              results["throughput"]["ratio"] >= 0.85,
                              "retrieval_p95_at_most_30ms": latency["hybrid"]["p95_ms"] <= 30}
    finally:
        await index.close()
        await mongo.close()
        await mongo_server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    path = write_results("ingest", results)
    print(f"targets: {results['targets']} -> {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
