"""Everything the engine needs, injected by the process's composition root."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from core.commands.audit import AuditLog
from core.commands.registry import CommandRegistry
from core.engine.arrival import ArrivalGate
from core.feedback import FeedbackStore
from core.intake.journal import MemoryTurnJournal, TurnJournal
from core.knowledge.answer_cache import AnswerCache
from core.knowledge.base import Retriever
from core.knowledge.service import KnowledgeService
from core.llm.base import Answerer
from core.llm.moderation import Moderator
from core.sessions.store import SessionStore
from core.state.base import SharedState
from core.tenants.registry import TenantRegistry
from core.turns.chain import OutboundChain
from core.usage import UsageLedger


@dataclass(frozen=True, slots=True)
class EngineSettings:
    dedupe_ttl_s: int = 86_400
    lock_wait_s: float = 60.0
    lock_lease_s: float = 30.0


@dataclass(frozen=True, slots=True)
class EngineDeps:
    tenants: TenantRegistry
    state: SharedState
    sessions: SessionStore
    usage: UsageLedger
    audit: AuditLog
    answerer: Answerer
    retriever: Retriever
    commands: CommandRegistry
    settings: EngineSettings = field(default_factory=EngineSettings)
    answer_cache: AnswerCache | None = None
    knowledge: KnowledgeService | None = None
    arrivals: ArrivalGate = field(default_factory=ArrivalGate)
    feedback: FeedbackStore | None = None
    journal: TurnJournal = field(default_factory=MemoryTurnJournal)
    outbound: OutboundChain = field(default_factory=OutboundChain)
    """The stages every turn event passes on its way to a channel, composed by the
    process's bootstrap (``bots/bootstrap.py``)."""
    moderator: Moderator | None = None
    """The provider's moderation, for tenants with ``[safety] moderation``; None when
    no provider is configured."""
    source_link: Callable[[str, str], str] | None = None
    """``(tenant, chunk id)`` → the public address of a cited file's source page, for
    citations with no web address of their own; None when the server has no public
    address (``SWITCHBOARD_PUBLIC_URL``)."""
