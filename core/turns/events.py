"""What a turn says to its channel, as typed events in the order they happen.

A turn that gets past dedupe, limits and the conversation lock starts (``TurnStarted``,
with the accepted message), may stream text (``TextDelta``) and call tools
(``ToolCalled`` then ``ToolReturned`` for each call, across the agent loop's steps), and
ends with exactly one of ``FinalReply`` or ``TurnFailed`` (the apology). A message
refused before it started (a duplicate is silent; a rate limit or an empty message gets
a reply) produces only the ``FinalReply``. Every channel renders each type natively;
``Receipt`` is what the delivery hands back — the platform id of what it posted.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from core.messages import InboundMessage
from core.replies import Reply

ToolOutcome = Literal["ok", "error", "invalid", "refused", "unknown", "skipped", "confirm"]
"""``confirm``: a side-effecting call parked until the user confirms it."""


@dataclass(frozen=True, slots=True)
class TurnStarted:
    turn_id: str
    message: InboundMessage


@dataclass(frozen=True, slots=True)
class TextDelta:
    turn_id: str
    text: str


@dataclass(frozen=True, slots=True)
class ToolCalled:
    turn_id: str
    call_id: str
    tool: str
    arguments: Mapping[str, object] = field(default_factory=dict)
    step: int = 1
    label: str = ""
    """What the user sees while it runs ("Searching the knowledge base")."""


@dataclass(frozen=True, slots=True)
class ToolReturned:
    turn_id: str
    call_id: str
    tool: str
    outcome: ToolOutcome
    summary: str = ""
    """One short line for the user ("3 passages", "= 42", "not allowed")."""
    duration_ms: float = 0.0
    step: int = 1


@dataclass(frozen=True, slots=True)
class FinalReply:
    turn_id: str
    reply: Reply


@dataclass(frozen=True, slots=True)
class TurnFailed:
    turn_id: str
    reply: Reply
    """The apology the user gets."""
    stage: str = ""


TurnEvent = TurnStarted | TextDelta | ToolCalled | ToolReturned | FinalReply | TurnFailed
EVENT_TYPES: tuple[type, ...] = (TurnStarted, TextDelta, ToolCalled, ToolReturned,
                                 FinalReply, TurnFailed)


@dataclass(frozen=True, slots=True)
class Receipt:
    """What a delivery did with an event: the platform id of the message that shows it
    (a Slack ts, a Discord message id), empty when nothing was posted."""

    message_id: str = ""
    delivered: Reply | None = None
    """Set by a stage that changed a reply on its way (the output filter): the reply the
    channel got, which is the one to store."""


NOTHING = Receipt()
