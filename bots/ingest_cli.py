"""``switchboard ingest``: load files, folders or URLs into a tenant's knowledge base."""

from __future__ import annotations

import asyncio
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from bots.bootstrap import open_services
from bots.settings import Settings
from core.knowledge.ingest import IngestOutcome, IngestReport


def _absolute(sources: list[str]) -> list[str]:
    return [s if s.startswith(("http://", "https://")) else str(Path(s).resolve())
            for s in sources]


def print_report(console: Console, report: IngestReport) -> None:
    table = Table(title="Ingestion summary")
    for column in ("added", "unchanged", "replaced", "removed", "failed"):
        table.add_column(column, justify="right")
    table.add_row(*(str(v) for v in report.summary().values()))
    console.print(table)
    for outcome in report.outcomes:
        if outcome.status == "failed":
            console.print(f"[red]failed[/red] {outcome.source}: {outcome.reason}")


async def run_ingest(settings: Settings, tenant_id: str, kb: str, sources: list[str],
                     reindex: bool) -> int:
    console = Console()
    async with open_services(settings) as services:
        if tenant_id not in services.tenants.tenant_ids():
            console.print(f"No tenant {tenant_id!r} in {settings.tenants_dir}.")
            return 2
        tenant = services.tenants.get(tenant_id)
        with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                      TextColumn("{task.completed} documents, {task.fields[chunks]} chunks"),
                      TimeElapsedColumn(), console=console) as bar:
            task = bar.add_task(f"ingesting into {tenant_id}/{kb}", total=None, chunks=0)
            chunks = 0

            def progress(outcome: IngestOutcome) -> None:
                nonlocal chunks
                chunks += outcome.chunks if outcome.status in ("added", "replaced") else 0
                bar.update(task, advance=1, chunks=chunks)

            absolute = await asyncio.to_thread(_absolute, sources)
            ingestor = services.knowledge.ingestor
            if reindex:
                report = await ingestor.reindex(tenant, absolute, services.knowledge.root,
                                                kb=kb, progress=progress)
            else:
                report = await ingestor.ingest(tenant, absolute, services.knowledge.root,
                                               kb=kb, progress=progress)
        print_report(console, report)
    return 1 if report.count("failed") else 0
