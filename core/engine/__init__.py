"""The engine: one explicit, ordered pipeline from inbound message to stored turn.

This package is the engine's whole interface for channels: ``Engine`` and the types its
methods take and return. Adapters import from here (and from ``core.messages``,
``core.replies``, ``core.turns`` and ``core.tenants.models``) and nothing else of the
core; ``tests/test_architecture.py`` checks it.
"""

from core.commands.registry import Command
from core.engine.analyze import NAMED_SCHEMAS, Analysis, SchemaProblem
from core.engine.console import Console, Conversation, Gap, Overview, gaps_csv
from core.engine.deps import EngineDeps, EngineSettings
from core.engine.engine import Engine
from core.engine.idempotency import KeptResponse
from core.engine.knowledge_admin import (
    FileDocument,
    KnowledgeUnavailable,
    SourceView,
    TextDocument,
)
from core.engine.pipeline import TurnResult
from core.feedback import Rating
from core.knowledge.base import SearchFilters
from core.knowledge.ingest import IngestOutcome, IngestReport
from core.knowledge.models import DocumentRecord
from core.tenants.registry import UnknownTenant

__all__ = [
    "NAMED_SCHEMAS",
    "Analysis",
    "Command",
    "Console",
    "Conversation",
    "DocumentRecord",
    "Engine",
    "EngineDeps",
    "EngineSettings",
    "FileDocument",
    "Gap",
    "IngestOutcome",
    "IngestReport",
    "KeptResponse",
    "KnowledgeUnavailable",
    "Overview",
    "Rating",
    "SchemaProblem",
    "SearchFilters",
    "SourceView",
    "TextDocument",
    "TurnResult",
    "UnknownTenant",
    "gaps_csv",
]
