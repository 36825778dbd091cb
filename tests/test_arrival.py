"""Arrival order inside one process survives the awaits before the conversation lock."""

from __future__ import annotations

import asyncio

from core.engine.arrival import ArrivalGate


async def test_places_open_in_arrival_order_even_when_someone_leaves_early() -> None:
    gate = ArrivalGate()
    first, second, third = (gate.arrive("acme:slack:t") for _ in range(3))
    other = gate.arrive("globex:slack:t")
    await asyncio.wait_for(other.wait(), 0.1)  # another conversation is never held up
    await asyncio.wait_for(first.wait(), 0.1)
    waiting = asyncio.create_task(third.wait())
    second.leave()  # e.g. dropped as a duplicate before reaching the lock
    await asyncio.sleep(0.01)
    assert not waiting.done()
    first.leave()
    first.leave()  # idempotent
    await asyncio.wait_for(waiting, 0.1)
    third.leave()
    other.leave()
    assert gate._lines == {}
