"""What a stored conversation message is.

One document per message (never an ever-growing array per thread). An assistant message
carries the usage of the turn that produced it, which makes it the per-turn usage record.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

Role = Literal["user", "assistant"]


@dataclass(frozen=True, slots=True)
class ConversationKey:
    tenant: str
    channel: str
    thread: str

    def lock_key(self) -> str:
        return f"{self.tenant}:{self.channel}:{self.thread}"


@dataclass(frozen=True, slots=True)
class TurnUsage:
    model: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def plus(self, more: TurnUsage) -> TurnUsage:
        """The usage of two model calls of one turn (the later call's model)."""
        return TurnUsage(more.model or self.model, self.prompt_tokens + more.prompt_tokens,
                         self.completion_tokens + more.completion_tokens,
                         self.cost_usd + more.cost_usd)


@dataclass(frozen=True, slots=True)
class StoredMessage:
    key: ConversationKey
    role: Role
    text: str
    user_id: str
    turn_id: str
    at: datetime
    expires_at: datetime
    platform_message_id: str = ""
    author_name: str = ""
    kind: str = ""
    usage: TurnUsage = field(default_factory=TurnUsage)
    citations: tuple[dict[str, str], ...] = ()
    follow_ups: tuple[str, ...] = ()
    """The suggestions an answer offered, so a reloaded conversation offers them again."""
    trace: dict[str, Any] | None = None
    grounding: str = ""
    """An answer's standing on the documents: ``cited``, ``no_source``, ``uncited``
    (empty for other replies and for answers stored before it was recorded)."""
    confidence: float | None = None
    """The agent loop's decision trace (steps, tool calls, outcomes, result sizes — never
    the arguments or results themselves), on the assistant message of a tool turn."""


@dataclass(frozen=True, slots=True)
class ThreadSummary:
    channel: str
    thread: str
    last_at: datetime
    messages: int


@dataclass(frozen=True, slots=True)
class TenantStats:
    turns: int
    users: int
    threads: int
