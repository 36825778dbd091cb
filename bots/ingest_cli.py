"""``switchboard ingest``: load files, folders or URLs into a tenant's knowledge base."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from adapters.terminal.remote import RemoteEngine
from bots import local_control
from bots.bootstrap import open_services
from bots.chat import unknown_tenant
from bots.settings import Settings
from core.knowledge.ingest import IngestOutcome, IngestReport


def _absolute(sources: list[str]) -> list[str]:
    return [s if s.startswith(("http://", "https://")) else str(Path(s).resolve())
            for s in sources]


def print_report(console: Console, report: IngestReport) -> None:
    print_summary(console, report.summary(),
                  [(o.source, o.reason) for o in report.outcomes if o.status == "failed"])


def print_summary(console: Console, summary: dict[str, int],
                  failures: list[tuple[str, str]]) -> None:
    table = Table(title="Ingestion summary")
    for column in ("added", "unchanged", "replaced", "removed", "failed"):
        table.add_column(column, justify="right")
    table.add_row(*(str(summary.get(c, 0)) for c in
                    ("added", "unchanged", "replaced", "removed", "failed")))
    console.print(table)
    for source, reason in failures:
        console.print(f"[red]failed[/red] {source}: {reason}", highlight=False)


async def _through_serve(console: Console, control: local_control.Control, tenant_id: str,
                         kb: str, sources: list[str], reindex: bool) -> int:
    console.print(f"[dim]serve is running ({control.url}): ingesting through it[/dim]")
    with _bar(console, tenant_id, kb) as (bar, task):
        chunks = 0

        def progress(line: dict[str, Any]) -> None:
            nonlocal chunks
            chunks += int(line["chunks"]) if line["status"] in ("added", "replaced") else 0
            bar.update(task, advance=1, chunks=chunks)

        try:
            report = await RemoteEngine(control.url, control.token).ingest(
                tenant_id, sources, kb, reindex, progress)
        except (RuntimeError, aiohttp.ClientError) as exc:
            console.print(f"[red]Ingestion through serve failed:[/red] {exc}")
            return 2
    print_summary(console, report["summary"], [(o["source"], o["reason"])
                                               for o in report["outcomes"]
                                               if o["status"] == "failed"])
    return 1 if report["summary"].get("failed") else 0


@contextlib.contextmanager
def _bar(console: Console, tenant_id: str, kb: str) -> Iterator[tuple[Progress, TaskID]]:
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                  TextColumn("{task.completed} documents, {task.fields[chunks]} chunks"),
                  TimeElapsedColumn(), console=console) as bar:
        yield bar, bar.add_task(f"ingesting into {tenant_id}/{kb}", total=None, chunks=0)


async def run_ingest(settings: Settings, tenant_id: str, kb: str, sources: list[str],
                     reindex: bool) -> int:
    """On the embedded defaults, a running ``serve`` holds the local knowledge store: the
    documents go in through it. Otherwise this process opens the stores itself."""
    console = Console()
    unknown = await asyncio.to_thread(unknown_tenant, settings, tenant_id)
    if unknown:
        print(unknown)  # one line, as typed: a Console would wrap it at 80 columns
        return 2
    control = None if settings.qdrant_url else await asyncio.to_thread(
        local_control.running, settings.data_dir)
    if control is not None:
        return await _through_serve(console, control, tenant_id, kb,
                                    await asyncio.to_thread(_absolute, sources), reindex)
    async with open_services(settings) as services:
        if tenant_id not in services.tenants.tenant_ids():
            print(f"No tenant {tenant_id!r} in {settings.tenants_dir}.")
            return 2
        tenant = services.tenants.get(tenant_id)
        with _bar(console, tenant_id, kb) as (bar, task):
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
