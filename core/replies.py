"""The channel-neutral reply the engine hands back to an adapter.

A turn's ``FinalReply`` event (``core/turns``) carries one. Text is Markdown; each
adapter renders it natively (Block Kit, Discord markdown, widget HTML, terminal).
Structured parts (citations, follow-ups, actions, the tools used) travel beside the text
so a renderer never has to parse them back out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ReplyKind = Literal["answer", "command", "refusal", "apology"]


@dataclass(frozen=True, slots=True)
class Citation:
    number: int
    title: str
    source: str
    url: str = ""
    snippet: str = ""
    chunk_id: str = ""


@dataclass(frozen=True, slots=True)
class Action:
    """A button-like affordance. ``id`` is what the adapter reports back when clicked."""

    id: str
    label: str
    value: str = ""


@dataclass(frozen=True, slots=True)
class ToolUse:
    """A tool the model called for this reply, as the user is shown it."""

    tool: str
    outcome: str
    summary: str = ""


@dataclass(frozen=True, slots=True)
class Reply:
    text: str
    kind: ReplyKind = "answer"
    citations: tuple[Citation, ...] = ()
    follow_ups: tuple[str, ...] = ()
    actions: tuple[Action, ...] = ()
    ephemeral: bool = False
    retry_after_s: float | None = None
    confidence: float | None = None
    turn_id: str = ""
    model: str = ""
    tools: tuple[ToolUse, ...] = ()
    partial: bool = False
    """The agent loop ran out of budget: the best answer so far, marked as such."""
    grounding: str = ""
    """``cited``, ``no_source`` or ``uncited`` for an answer (operators' knowledge gaps)."""


CONFIRM_YES, CONFIRM_NO = "confirm_yes", "confirm_no"
"""The action ids of the two buttons under a tool call that waits for the user; their
value is the parked call's id."""


def feedback_actions(turn_id: str) -> tuple[Action, ...]:
    """The thumbs every answer carries, keyed to the turn they rate."""
    return (
        Action(id="feedback_up", label="Helpful", value=turn_id),
        Action(id="feedback_down", label="Not helpful", value=turn_id),
    )
