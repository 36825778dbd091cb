"""The channel-neutral reply the engine hands back to an adapter.

Text is Markdown; each adapter renders it natively (Block Kit, Discord markdown,
widget HTML, terminal). Structured parts (citations, follow-ups, actions) travel beside
the text so a renderer never has to parse them back out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol

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


def feedback_actions(turn_id: str) -> tuple[Action, ...]:
    """The thumbs every answer carries, keyed to the turn they rate."""
    return (
        Action(id="feedback_up", label="Helpful", value=turn_id),
        Action(id="feedback_down", label="Not helpful", value=turn_id),
    )


class ReplySink(Protocol):
    """Where the engine delivers one reply: zero or more deltas, then exactly one reply.

    Adapters implement this; a channel that cannot stream may ignore deltas and render
    only the final reply. ``finish`` always receives the complete text, so an adapter
    never has to reassemble it from deltas.

    ``working`` is called once the turn is accepted (past dedupe, limits and the
    conversation lock) and before the slow part starts, so a channel can show that an
    answer is coming — never for a duplicate or a refused message.
    """

    async def working(self) -> None: ...

    async def delta(self, text: str) -> None: ...

    async def finish(self, reply: Reply) -> None: ...


def address_of(sink: ReplySink) -> dict[str, object]:
    """Where a sink delivers, as plain data (``{"kind": "slack-thread", ...}``), for
    sinks that can be rebuilt after a restart; empty for the others. Journaled with each
    accepted message so a turn interrupted by a crash is answered in the same place."""
    address = getattr(sink, "address", None)
    return dict(address) if isinstance(address, dict) else {}


def delivered_id(sink: ReplySink) -> str:
    """The platform id of the delivered reply, for sinks that know it (Slack: its ts).

    Stored with the turn so an edited question can update the same reply later.
    """
    return str(getattr(sink, "delivered_id", "") or "")


@dataclass(slots=True)
class CollectingSink:
    """A sink that keeps everything it was given; the in-memory channel builds on it."""

    deltas: list[str] = field(default_factory=list)
    replies: list[Reply] = field(default_factory=list)
    working_signals: int = 0

    async def working(self) -> None:
        self.working_signals += 1

    async def delta(self, text: str) -> None:
        self.deltas.append(text)

    async def finish(self, reply: Reply) -> None:
        self.replies.append(reply)
