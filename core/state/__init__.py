"""Short-lived shared state: rate limits, dedupe keys, conversation locks, counters.

Backed by Redis in production (shared by every worker) and by in-process structures when
``REDIS_URL`` is unset (valid for one process only). Both implement :class:`SharedState`.
"""

from core.state.base import LockTimeout, RateDecision, SharedState

__all__ = ["LockTimeout", "RateDecision", "SharedState"]
