"""``switchboard eval retrieval``: retrieval quality on a BEIR folder, with progress."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from core.knowledge.evaluation import evaluate, load_beir


def _write_json(path: Path, results: dict[str, object]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")


async def run_eval(dataset_dir: str, json_out: str | None) -> int:
    folder = Path(dataset_dir)
    if not (folder / "corpus.jsonl").is_file():
        print(f"{folder} is not a BEIR folder (corpus.jsonl, queries.jsonl, qrels/test.tsv)")
        return 2
    console = Console(stderr=True)
    dataset = load_beir(folder)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console) as bar:
        tasks: dict[str, TaskID] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                label = "ingesting corpus" if stage == "ingest" else f"queries ({stage})"
                tasks[stage] = bar.add_task(label, total=total)
            bar.update(tasks[stage], completed=done)

        results = await evaluate(dataset, progress=progress)
    results["dataset"] = str(folder)
    table = Table(title=f"Retrieval on {folder.name}: {results['queries']} queries, "
                        f"{results['documents']} documents")
    for column in ("mode", "nDCG@10", "recall@10", "MRR@10", "p50 ms", "p95 ms"):
        table.add_column(column, justify="right")
    for mode, m in results["modes"].items():
        table.add_row(mode, f"{m['ndcg@10']:.4f}", f"{m['recall@10']:.4f}", f"{m['mrr@10']:.4f}",
                      f"{m['latency_ms_p50']:.1f}", f"{m['latency_ms_p95']:.1f}")
    Console().print(table)
    if json_out:
        await asyncio.to_thread(_write_json, Path(json_out), results)
        print(f"wrote {json_out}")
    return 0
