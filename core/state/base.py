"""The narrow interface the engine uses for shared, expiring state.

Every key the engine passes already starts with the tenant id, so no bucket, dedupe key
or lock is shared between tenants. Implementations add their own namespace prefix.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Bucket:
    """A token bucket: ``per_minute`` tokens of capacity, refilled continuously."""

    key: str
    per_minute: int
    scope: str


@dataclass(frozen=True, slots=True)
class RateDecision:
    allowed: bool
    retry_after_s: float = 0.0
    scope: str = ""
    degraded: bool = False
    """Decided by this process alone because the shared store was unreachable."""


class LockTimeout(TimeoutError):
    """The conversation stayed busy longer than the caller was willing to wait."""


class SharedState(Protocol):
    name: str

    @property
    def degraded(self) -> bool:
        """True while this process serves without the shared backend (resilient.py)."""
        ...

    async def take(self, buckets: list[Bucket]) -> RateDecision:
        """Take one token from every bucket, atomically: all or none.

        A refusal names the scope that refused and when a token will be available.
        """
        ...

    async def first_seen(self, key: str, ttl_s: int) -> bool:
        """True the first time ``key`` is offered within ``ttl_s``; False afterwards."""
        ...

    def conversation_lock(self, key: str, wait_s: float,
                          lease_s: float) -> AbstractAsyncContextManager[None]:
        """Hold ``key`` exclusively; waiters are served in arrival order (FIFO).

        Raises :class:`LockTimeout` after ``wait_s``. A holder that dies releases the lock
        after ``lease_s`` at most; a live holder keeps renewing its lease.
        """
        ...

    async def add(self, key: str, amount: int, ttl_s: int) -> int:
        """Add to a counter (created at 0) and return the new value."""
        ...

    async def get_int(self, key: str) -> int | None: ...

    async def set_int_if_absent(self, key: str, value: int, ttl_s: int) -> bool: ...

    async def cache_get(self, key: str) -> str | None:
        """A cached value, or None when absent or expired."""
        ...

    async def cache_set(self, key: str, value: str, ttl_s: int) -> None: ...

    async def cache_delete(self, *keys: str) -> None: ...

    async def ping(self) -> None:
        """Raise if the backend cannot serve requests."""
        ...

    async def close(self) -> None: ...
