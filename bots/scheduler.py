"""``switchboard scheduler``: the scheduled-jobs process (apscheduler).

Jobs: re-ingest every knowledge source a tenant file gives a ``schedule`` (cron, UTC),
kept in step with the tenant files; enforce message retention (real MongoDB also expires
documents through the TTL index; the sweep makes retention exact on servers that expire
lazily).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import signal
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger

from bots.bootstrap import Services, open_services
from bots.settings import Settings
from core.tenants.registry import TenantRegistry

log = logging.getLogger("switchboard.scheduler")


async def purge_expired_messages(services: Services) -> int:
    removed = await services.sessions.purge_expired(datetime.now(UTC))
    log.info("retention sweep removed %d expired messages", removed)
    return removed


async def reingest(services: Services, tenant_id: str, path: str, kb: str) -> None:
    try:
        tenant = services.tenants.get(tenant_id)
        report = await services.knowledge.ingestor.ingest(
            tenant, [path], services.knowledge.root, kb=kb, sync=True)
        log.info("scheduled ingestion of %s: %s", path, report.summary(),
                 extra={"tenant": tenant_id})
    except Exception:
        log.exception("scheduled ingestion of %s failed", path, extra={"tenant": tenant_id})


IngestJob = Callable[[str, str, str], Awaitable[None]]


def sync_ingest_jobs(scheduler: AsyncIOScheduler, tenants: TenantRegistry,
                     job: IngestJob) -> set[str]:
    """Add, replace or remove ingestion jobs so they match the tenant files."""
    wanted: dict[str, tuple[str, str, str, str]] = {}
    for tenant_id in tenants.tenant_ids():
        for source in tenants.get(tenant_id).knowledge.sources:
            if source.schedule:
                job_id = f"ingest:{tenant_id}:{source.kb}:{source.path}"
                wanted[job_id] = (tenant_id, source.path, source.kb, source.schedule)
    current = {job.id: job for job in scheduler.get_jobs() if job.id.startswith("ingest:")}
    for job_id in set(current) - set(wanted):
        scheduler.remove_job(job_id)
    for job_id, (tenant_id, path, kb, schedule) in wanted.items():
        existing = current.get(job_id)
        if existing is not None and existing.name == schedule:
            continue
        scheduler.add_job(job, CronTrigger.from_crontab(schedule, timezone="UTC"),
                          args=[tenant_id, path, kb], id=job_id, name=schedule,
                          replace_existing=True, max_instances=1, coalesce=True)
    return set(wanted)


def start_scheduler(services: Services) -> AsyncIOScheduler:
    """The jobs on ``services``, running on this event loop (the ``scheduler`` process,
    or ``serve`` on the embedded defaults, where only it may write the local index)."""
    scheduler = AsyncIOScheduler(timezone="UTC")
    scheduler.add_job(purge_expired_messages, "interval", minutes=15, args=[services],
                      id="retention", next_run_time=datetime.now(UTC),
                      max_instances=1, coalesce=True)
    job = functools.partial(reingest, services)
    sync_ingest_jobs(scheduler, services.tenants, job)
    scheduler.add_job(sync_ingest_jobs, "interval", seconds=30,
                      args=[scheduler, services.tenants, job], id="sync-schedules")
    scheduler.start()
    log.info("scheduler running: %s", ", ".join(j.id for j in scheduler.get_jobs()))
    return scheduler


async def run_scheduler(settings: Settings) -> int:
    async with open_services(settings, watch_tenants=True) as services:
        scheduler = start_scheduler(services)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        scheduler.shutdown(wait=False)
    return 0
