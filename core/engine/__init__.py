"""The engine: one explicit, ordered pipeline from inbound message to stored turn."""

from core.engine.pipeline import Engine, EngineDeps, EngineSettings, TurnResult

__all__ = ["Engine", "EngineDeps", "EngineSettings", "TurnResult"]
