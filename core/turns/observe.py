"""The metrics stage: counts every turn event by type on its way to the channel."""

from __future__ import annotations

from core.observability import metrics
from core.turns.chain import Next
from core.turns.events import Receipt, TurnEvent


async def count_events(event: TurnEvent, next_stage: Next) -> Receipt:
    metrics.TURN_EVENTS.labels(type(event).__name__).inc()
    return await next_stage(event)
