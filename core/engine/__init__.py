"""The engine: one explicit, ordered pipeline from inbound message to stored turn."""

from core.engine.deps import EngineDeps, EngineSettings
from core.engine.engine import Engine
from core.engine.pipeline import TurnResult

__all__ = ["Engine", "EngineDeps", "EngineSettings", "TurnResult"]
