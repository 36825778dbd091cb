"""``switchboard scheduler``: the scheduled-jobs process (apscheduler).

Jobs now: enforce message retention (real MongoDB also expires documents through the TTL
index; this sweep makes retention exact on servers that expire lazily) and pick up
tenant file changes. Knowledge re-ingestion schedules join when knowledge lands.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from datetime import UTC, datetime

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bots.bootstrap import Services, open_services
from bots.settings import Settings

log = logging.getLogger("switchboard.scheduler")


async def purge_expired_messages(services: Services) -> int:
    removed = await services.sessions.purge_expired(datetime.now(UTC))
    log.info("retention sweep removed %d expired messages", removed)
    return removed


async def run_scheduler(settings: Settings) -> int:
    async with open_services(settings, watch_tenants=True) as services:
        scheduler = AsyncIOScheduler(timezone="UTC")
        scheduler.add_job(purge_expired_messages, "interval", minutes=15, args=[services],
                          id="retention", next_run_time=datetime.now(UTC),
                          max_instances=1, coalesce=True)
        scheduler.start()
        log.info("scheduler running: %s", ", ".join(j.id for j in scheduler.get_jobs()))
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        scheduler.shutdown(wait=False)
    return 0
