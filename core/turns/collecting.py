"""A delivery that keeps every event: the in-memory channel and tests build on it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from core.replies import Reply
from core.turns.events import (
    NOTHING,
    FinalReply,
    Receipt,
    TextDelta,
    ToolCalled,
    ToolReturned,
    TurnEvent,
    TurnFailed,
    TurnStarted,
)


@dataclass(slots=True)
class CollectingDelivery:
    events: list[TurnEvent] = field(default_factory=list)

    @property
    def address(self) -> Mapping[str, object]:
        return {}

    async def deliver(self, event: TurnEvent) -> Receipt:
        self.events.append(event)
        return NOTHING

    @property
    def deltas(self) -> list[str]:
        return [e.text for e in self.events if isinstance(e, TextDelta)]

    @property
    def replies(self) -> list[Reply]:
        return [e.reply for e in self.events if isinstance(e, FinalReply | TurnFailed)]

    @property
    def tool_events(self) -> list[ToolCalled | ToolReturned]:
        return [e for e in self.events if isinstance(e, ToolCalled | ToolReturned)]

    @property
    def working_signals(self) -> int:
        return sum(isinstance(e, TurnStarted) for e in self.events)
