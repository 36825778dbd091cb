"""The metrics stage: counts every turn event by type on its way to the channel."""

from __future__ import annotations

from core.turns.chain import Next
from core.turns.events import EVENT_TYPES, Receipt, TurnEvent
from observability import metrics

_COUNTERS = {kind: metrics.TURN_EVENTS.labels(kind.__name__) for kind in EVENT_TYPES}
"""One child per event type, looked up once: ``labels()`` on every delta adds up."""


async def count_events(event: TurnEvent, next_stage: Next) -> Receipt:
    _COUNTERS[type(event)].inc()
    return await next_stage(event)
