"""Retrieval quality on a BEIR-format dataset, through the product's own pipeline.

The corpus is ingested with the real ingestor (chunking, embeddings, BM25 vectors) into
a throw-away in-memory index, then every test query runs through the real retriever in
each mode. A document's rank is the rank of its best chunk. Metrics: nDCG@10, recall@10,
MRR@10 (relevance from ``qrels/test.tsv``) and per-query latency including the query
embedding.
"""

from __future__ import annotations

import json
import math
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.knowledge.catalog import MemoryCatalog
from core.knowledge.embedders import EmbedderRegistry
from core.knowledge.index import QdrantIndex
from core.knowledge.ingest import Ingestor, IngestOutcome
from core.knowledge.models import SourceDocument
from core.knowledge.retriever import KnowledgeRetriever, Mode
from core.tenants.models import TenantConfig

MODES: tuple[Mode, ...] = ("dense", "sparse", "hybrid")


@dataclass(frozen=True, slots=True)
class Dataset:
    corpus: list[dict[str, Any]]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]


def load_beir(folder: Path, split: str = "test") -> Dataset:
    corpus = [json.loads(line) for line in (folder / "corpus.jsonl").open(encoding="utf-8")
              if line.strip()]
    queries = {q["_id"]: q["text"] for q in map(json.loads, (folder / "queries.jsonl").open(
        encoding="utf-8")) if q}
    qrels: dict[str, dict[str, int]] = defaultdict(dict)
    with (folder / "qrels" / f"{split}.tsv").open(encoding="utf-8") as handle:
        next(handle)
        for line in handle:
            query_id, doc_id, score = line.rstrip("\n").split("\t")
            if int(score) > 0:
                qrels[query_id][doc_id] = int(score)
    return Dataset(corpus, queries, {q: r for q, r in qrels.items() if q in queries})


def ndcg_at_10(ranked: list[str], relevant: dict[str, int]) -> float:
    dcg = sum(relevant.get(d, 0) / math.log2(i + 2) for i, d in enumerate(ranked[:10]))
    ideal = sorted(relevant.values(), reverse=True)[:10]
    idcg = sum(r / math.log2(i + 2) for i, r in enumerate(ideal))
    return dcg / idcg if idcg else 0.0


def recall_at_10(ranked: list[str], relevant: dict[str, int]) -> float:
    return len(set(ranked[:10]) & set(relevant)) / len(relevant)


def mrr_at_10(ranked: list[str], relevant: dict[str, int]) -> float:
    return next((1 / (i + 1) for i, d in enumerate(ranked[:10]) if d in relevant), 0.0)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


async def _documents(dataset: Dataset) -> AsyncIterator[SourceDocument]:
    for doc in dataset.corpus:
        yield SourceDocument(source=f"beir:{doc['_id']}", content=doc.get("text", "").encode(),
                             content_type="text/plain", title=doc.get("title", ""))


async def evaluate(dataset: Dataset, *, progress: Callable[[str, int, int], None] | None = None
                   ) -> dict[str, Any]:
    tenant = TenantConfig.model_validate({"id": "eval", "name": "Evaluation",
                                          "knowledge": {"top_k": 20, "score_threshold": 0}})
    index = QdrantIndex()
    embedders = EmbedderRegistry()
    catalog = MemoryCatalog()
    ingestor = Ingestor(index, catalog, embedders.for_tenant)
    retriever = KnowledgeRetriever(index, catalog, embedders.for_tenant)
    done = 0

    def ingested(outcome: IngestOutcome) -> None:
        nonlocal done
        done += 1
        if progress:
            progress("ingest", done, len(dataset.corpus))

    started = time.perf_counter()
    report = await ingestor.ingest_stream(tenant, _documents(dataset), progress=ingested)
    ingest_s = time.perf_counter() - started
    results: dict[str, Any] = {"documents": len(dataset.corpus), "queries": len(dataset.qrels),
                               "ingest": {**report.summary(), "seconds": round(ingest_s, 1)},
                               "modes": {}}
    query_ids = sorted(dataset.qrels)
    for mode in MODES:
        scores: dict[str, list[float]] = {"ndcg@10": [], "recall@10": [], "mrr@10": []}
        latencies: list[float] = []
        for n, query_id in enumerate(query_ids, start=1):
            t0 = time.perf_counter()
            passages = await retriever.search(tenant, dataset.queries[query_id], mode=mode,
                                              budget_tokens=10**9)
            latencies.append(time.perf_counter() - t0)
            ranked = list(dict.fromkeys(p.source.removeprefix("beir:") for p in passages))
            relevant = dataset.qrels[query_id]
            scores["ndcg@10"].append(ndcg_at_10(ranked, relevant))
            scores["recall@10"].append(recall_at_10(ranked, relevant))
            scores["mrr@10"].append(mrr_at_10(ranked, relevant))
            if progress:
                progress(mode, n, len(query_ids))
        results["modes"][mode] = {
            **{k: round(sum(v) / len(v), 4) for k, v in scores.items()},
            "latency_ms_p50": round(_percentile(latencies, 50) * 1000, 2),
            "latency_ms_p95": round(_percentile(latencies, 95) * 1000, 2)}
    await index.close()
    return results
