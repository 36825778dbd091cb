"""The metrics stage: counts every turn event by type on its way to the channel, and
times each answer's first text from the message's arrival (the time-to-first-delta
SLO, docs/slo.md)."""

from __future__ import annotations

from datetime import UTC, datetime

from core.turns.chain import Next
from core.turns.events import (
    EVENT_TYPES,
    FinalReply,
    Receipt,
    TextDelta,
    TurnEvent,
    TurnFailed,
    TurnStarted,
)
from observability import metrics

_COUNTERS = {kind: metrics.TURN_EVENTS.labels(kind.__name__) for kind in EVENT_TYPES}
"""One child per event type, looked up once: ``labels()`` on every delta adds up."""
_WAITING: dict[str, tuple[datetime, str]] = {}
"""Turns started whose first text has not gone out: arrival time and channel."""


async def count_events(event: TurnEvent, next_stage: Next) -> Receipt:
    _COUNTERS[type(event)].inc()
    match event:
        case TurnStarted(turn_id=turn_id, message=message):
            _WAITING[turn_id] = (message.received_at, message.channel)
        case TextDelta(turn_id=turn_id) if turn_id in _WAITING:
            arrived, channel = _WAITING.pop(turn_id)
            metrics.FIRST_DELTA_SECONDS.labels(channel).observe(
                max(0.0, (datetime.now(UTC) - arrived).total_seconds()))
        case FinalReply(turn_id=turn_id) | TurnFailed(turn_id=turn_id):
            _WAITING.pop(turn_id, None)
    return await next_stage(event)
