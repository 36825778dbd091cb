"""The state one turn accumulates as it moves through the pipeline."""

from __future__ import annotations

import uuid
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any, Literal

from core.engine.arrival import Place
from core.messages import InboundMessage
from core.replies import Reply
from core.sessions.models import ConversationKey, StoredMessage, TurnUsage
from core.tenants.models import TenantConfig
from core.turns.chain import Outbound

Route = Literal["chat", "command", "admin_command"]
Outcome = Literal[
    "answered", "command", "unknown_tenant", "ignored", "duplicate", "rate_limited",
    "busy", "budget_exhausted", "llm_error", "error", "empty", "filtered",
]


@dataclass(slots=True)
class Stop:
    """Returned by a step to end the turn early (with an optional reply to deliver)."""

    outcome: Outcome
    reply: Reply | None = None


@dataclass(slots=True)
class Turn:
    message: InboundMessage
    out: Outbound
    """The turn's outbound chain, bound to its channel's delivery."""
    exits: AsyncExitStack
    turn_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    tenant: TenantConfig | None = None
    key: ConversationKey | None = None
    history: list[StoredMessage] = field(default_factory=list)
    route: Route = "chat"
    reply: Reply | None = None
    usage: TurnUsage = field(default_factory=TurnUsage)
    outcome: Outcome = "answered"
    stages: dict[str, float] = field(default_factory=dict)
    place: Place | None = None
    replay: bool = False
    """Replayed from the journal after a crash: already accepted once, so dedupe and
    rate limits were decided then; only a stored answer makes it a duplicate."""
    journaled: bool = False
    stored: bool = False
    """The turn's messages are in the session store (or journaled for write-back)."""
    trace: dict[str, Any] | None = None
    """The agent loop's decision trace, stored with the assistant message."""
    write_back: bool = False
    """MongoDB refused the turn: its messages wait in the journal for ``Recovery``."""

    def require_tenant(self) -> TenantConfig:
        assert self.tenant is not None, "resolve_tenant runs first"
        return self.tenant

    def require_key(self) -> ConversationKey:
        assert self.key is not None, "resolve_tenant runs first"
        return self.key
