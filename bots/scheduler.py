"""``switchboard scheduler``: the scheduled-jobs process (apscheduler).

Jobs: re-ingest every knowledge source a tenant file gives a ``schedule`` (cron, UTC),
kept in step with the tenant files; enforce message retention (real MongoDB also expires
documents through the TTL index; the sweep makes retention exact on servers that expire
lazily); record the job table in MongoDB every minute (``scheduler_jobs``), so ``deploy
plan`` can compare what runs with what the files ask for; for tenants with a ``[digest]``
channel, the weekly digest and the daily drift check (``digest.py``).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import signal
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import aiohttp
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


DigestJob = Callable[[str], Awaitable[object]]
DRIFT_CHECK_CRON = "0 6 * * *"


def sync_digest_jobs(scheduler: AsyncIOScheduler, tenants: TenantRegistry,
                     weekly: DigestJob, drift: DigestJob) -> set[str]:
    """One weekly-digest job and one daily drift-check job per tenant with a digest
    channel, kept in step with the tenant files."""
    wanted: dict[str, tuple[DigestJob, str, str]] = {}
    for tenant_id in tenants.tenant_ids():
        digest = tenants.get(tenant_id).digest
        if not digest.configured:
            continue
        wanted[f"digest:{tenant_id}"] = (weekly, tenant_id,
                                         f"0 {digest.hour} * * {digest.weekday}")
        if digest.drift_check:
            wanted[f"drift:{tenant_id}"] = (drift, tenant_id, DRIFT_CHECK_CRON)
    current = {job.id: job for job in scheduler.get_jobs()
               if job.id.startswith(("digest:", "drift:"))}
    for job_id in set(current) - set(wanted):
        scheduler.remove_job(job_id)
    for job_id, (job, tenant_id, cron) in wanted.items():
        existing = current.get(job_id)
        if existing is not None and existing.name == cron:
            continue
        scheduler.add_job(job, CronTrigger.from_crontab(cron, timezone="UTC"),
                          args=[tenant_id], id=job_id, name=cron, replace_existing=True,
                          max_instances=1, coalesce=True, misfire_grace_time=3600)
    return set(wanted)


def _digest_jobs(services: Services, http: aiohttp.ClientSession
                 ) -> tuple[DigestJob, DigestJob]:
    from bots.deploy import Deployment
    from bots.digest import AdminPoster, run_drift_check, run_weekly_digest
    from core.commands.builtins import builtin_commands
    poster = AdminPoster(services.settings, http, services.mongo.db["dead_letters"])
    deployment = Deployment(services.mongo, services.knowledge, builtin_commands(), http)

    async def weekly(tenant_id: str) -> object:
        try:
            return await run_weekly_digest(services.engine, poster, tenant_id)
        except Exception:
            log.exception("the weekly digest failed", extra={"tenant": tenant_id})
            return False

    async def drift(tenant_id: str) -> object:
        try:
            return await run_drift_check(services.settings, deployment, poster,
                                         services.engine, tenant_id)
        except Exception:
            log.exception("the drift check failed", extra={"tenant": tenant_id})
            return False
    return weekly, drift


def start_scheduler(services: Services, http: aiohttp.ClientSession) -> AsyncIOScheduler:
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
    weekly, drift = _digest_jobs(services, http)
    sync_digest_jobs(scheduler, services.tenants, weekly, drift)
    scheduler.add_job(sync_digest_jobs, "interval", seconds=30,
                      args=[scheduler, services.tenants, weekly, drift], id="sync-digests")
    scheduler.add_job(record_jobs, "interval", minutes=1, args=[scheduler, services],
                      id="record-jobs", next_run_time=datetime.now(UTC),
                      max_instances=1, coalesce=True)
    scheduler.start()
    log.info("scheduler running: %s", ", ".join(j.id for j in scheduler.get_jobs()))
    return scheduler


async def record_jobs(scheduler: AsyncIOScheduler, services: Services) -> None:
    """What this scheduler runs, as the deployment's record of it."""
    jobs = [{"id": j.id, "cron": j.name, "next": j.next_run_time}
            for j in scheduler.get_jobs() if j.id.startswith("ingest:")]
    try:
        await services.mongo.db["scheduler_jobs"].replace_one(
            {"_id": "jobs"}, {"_id": "jobs", "at": datetime.now(UTC), "jobs": jobs},
            upsert=True)
    except Exception as exc:  # the jobs run on; the record is for operators
        log.warning("could not record the scheduler's jobs: %s", exc)


def http_session() -> aiohttp.ClientSession:
    """For the jobs' posts to Slack and Discord; the caller closes it."""
    return aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))


async def run_scheduler(settings: Settings) -> int:
    async with open_services(settings, watch_tenants=True) as services, \
            http_session() as http:
        scheduler = start_scheduler(services, http)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        scheduler.shutdown(wait=False)
    return 0
