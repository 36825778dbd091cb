"""The engine: one explicit, ordered pipeline from inbound message to stored turn."""

from core.engine.analyze import NAMED_SCHEMAS, Analysis, SchemaProblem
from core.engine.deps import EngineDeps, EngineSettings
from core.engine.engine import Engine
from core.engine.idempotency import KeptResponse
from core.engine.pipeline import TurnResult

__all__ = ["NAMED_SCHEMAS", "Analysis", "Engine", "EngineDeps", "EngineSettings",
           "KeptResponse", "SchemaProblem", "TurnResult"]
