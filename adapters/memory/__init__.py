"""An in-memory channel: push a message, pop the reply. For engine tests and benchmarks."""

from adapters.memory.channel import MemoryChannel

__all__ = ["MemoryChannel"]
