"""Finishing what the journal holds: replays after a crash, write-backs after an outage.

Started once per process, after its adapters are up (they rebuild deliveries from the
journaled addresses):

* an entry that was accepted but never answered (the process died mid-turn) is run
  again through the engine under its original turn id, its answer delivered where the
  journaled address says — or, when the channel cannot be reached from this process any
  more (a widget visitor's socket), stored so the visitor sees it on return. If the
  turn's answer had already been stored, the replay is dropped as a duplicate;
* an entry that was answered while MongoDB was down holds the turn's messages; they are
  written back (idempotently) as soon as MongoDB takes them, retried every
  ``interval_s``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from core.engine.engine import Engine
from core.intake.codec import message_from_dict, stored_from_dict
from core.intake.journal import JournalEntry
from core.sessions.store import StoreUnavailable
from core.turns.chain import Delivery
from core.turns.collecting import CollectingDelivery
from observability import metrics

log = logging.getLogger("switchboard.journal")

Redeliver = Callable[[Mapping[str, Any]], Awaitable[Delivery | None]]


class Recovery:
    def __init__(self, engine: Engine, redeliver: Redeliver, *,
                 interval_s: float = 1.0) -> None:
        self._engine = engine
        self._redeliver = redeliver
        self._interval = interval_s

    async def replay(self, orphans: list[JournalEntry]) -> int:
        """Answer every journaled message a crash interrupted; returns how many."""
        replayed = 0
        for entry in orphans:
            if entry.state != "accepted":
                continue
            try:
                message = message_from_dict(entry.message)
            except (KeyError, ValueError, TypeError):
                log.error("a journaled message could not be read; dropped",
                          extra={"turn_id": entry.turn_id, "tenant": entry.tenant})
                await self._engine.deps.journal.done(entry.turn_id)
                continue
            sink = await self._redeliver(entry.address) if entry.address else None
            result = await self._engine.handle(message, sink or CollectingDelivery(),
                                               turn_id=entry.turn_id, replay=True)
            metrics.RECOVERED.labels("replayed").inc()
            log.warning("replayed a turn interrupted by the last stop: %s", result.outcome,
                        extra={"turn_id": entry.turn_id, "tenant": entry.tenant,
                               "delivered": sink is not None})
            replayed += 1
        return replayed

    async def write_back(self) -> int:
        """Store every journaled turn MongoDB refused earlier; returns how many now."""
        journal, sessions = self._engine.deps.journal, self._engine.deps.sessions
        written = 0
        for entry in journal.pending():
            if entry.state != "unstored" or not entry.stored:
                continue
            try:
                await sessions.append([stored_from_dict(d) for d in entry.stored])
            except StoreUnavailable:
                return written  # still down; the next round tries again
            await journal.done(entry.turn_id)
            metrics.RECOVERED.labels("written_back").inc()
            written += 1
        if written:
            log.warning("wrote %d journaled turns back to the session store", written)
        return written

    async def run(self, orphans: list[JournalEntry]) -> None:
        """Replay, then keep writing back until cancelled."""
        await self.replay(orphans)
        while True:
            await self.write_back()
            await asyncio.sleep(self._interval)
