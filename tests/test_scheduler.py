"""Scheduled re-ingestion follows the tenant files."""

from __future__ import annotations

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bots.scheduler import sync_ingest_jobs
from core.tenants.registry import TenantRegistry
from tests.conftest import tenant


async def test_jobs_follow_tenant_sources_and_schedules() -> None:
    ran: list[tuple[str, str, str]] = []

    async def job(tenant_id: str, path: str, kb: str) -> None:
        ran.append((tenant_id, path, kb))

    scheduler = AsyncIOScheduler(timezone="UTC")
    scheduler.start(paused=True)
    acme = tenant("acme", knowledge={"sources": [
        {"path": "docs/", "schedule": "0 3 * * *"}, {"path": "https://acme.example/faq"}]})
    registry = TenantRegistry.from_configs(acme, tenant("globex"))
    assert sync_ingest_jobs(scheduler, registry, job) == {"ingest:acme:default:docs/"}
    [scheduled] = scheduler.get_jobs()
    assert str(scheduled.trigger) == "cron[month='*', day='*', day_of_week='*', hour='3', " \
                                     "minute='0']"
    await scheduled.func(*scheduled.args)
    assert ran == [("acme", "docs/", "default")]
    changed = tenant("acme", knowledge={"sources": [{"path": "docs/", "schedule": "*/5 * * * *"}]})
    sync_ingest_jobs(scheduler, TenantRegistry.from_configs(changed), job)
    assert "minute='*/5'" in str(scheduler.get_jobs()[0].trigger)
    sync_ingest_jobs(scheduler, TenantRegistry.from_configs(tenant("acme")), job)
    assert scheduler.get_jobs() == []
    scheduler.shutdown(wait=False)


def test_a_bad_cron_expression_is_a_tenant_file_error() -> None:
    import pytest
    from pydantic import ValidationError
    with pytest.raises(ValidationError, match="not a valid cron expression"):
        tenant("acme", knowledge={"sources": [{"path": "docs/", "schedule": "every day"}]})
