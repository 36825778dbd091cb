"""A turn as a stream of typed events, and the ordered chain they travel to a channel."""

from core.turns.chain import Delivery, Next, Outbound, OutboundChain, Stage
from core.turns.events import (
    FinalReply,
    Receipt,
    TextDelta,
    ToolCalled,
    ToolReturned,
    TurnEvent,
    TurnFailed,
    TurnStarted,
)

__all__ = [
    "Delivery", "FinalReply", "Next", "Outbound", "OutboundChain", "Receipt", "Stage",
    "TextDelta", "ToolCalled", "ToolReturned", "TurnEvent", "TurnFailed", "TurnStarted",
]
