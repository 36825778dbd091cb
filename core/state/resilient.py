"""Shared state that degrades to the process's own memory while the server is down.

Redis holds rate limits, dedupe keys, conversation locks and caches for all workers;
none of them is worth losing a message over. While the primary is unreachable each call
is served by an in-process ``MemoryState`` instead, and the turn goes on:

* **dedupe** — per process; the engine also checks the stored platform message id, so a
  redelivery of a message that was already answered and stored is still dropped;
* **locks** — per process (two workers could answer one conversation at once);
* **rate limits** — per-process buckets, marked ``degraded`` so the engine can apply the
  tenant's ``limits.when_state_down`` policy (local buckets, open or closed);
* **caches** — misses; a key written during the outage is deleted from the primary when
  it returns, so nothing stale is served afterwards;
* **counters** (token budget) — per process; the usage ledger's MongoDB record stays
  the source of truth.

A circuit breaker keeps a dead server from costing every call its socket timeout: after
a failure the primary is skipped for ``retry_after_s``, then tried again. Entering and
leaving degraded mode are logged once each and shown in
``switchboard_dependency_degraded``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TypeVar

from core.state.base import Bucket, LockTimeout, RateDecision, SharedState
from core.state.memory import MemoryState
from observability import metrics

log = logging.getLogger("switchboard.state")
T = TypeVar("T")


class ResilientState:
    def __init__(self, primary: SharedState, *, errors: tuple[type[BaseException], ...],
                 retry_after_s: float = 1.0, dependency: str = "redis") -> None:
        self._primary = primary
        self._fallback = MemoryState()
        self._errors = errors
        self._retry_after = retry_after_s
        self._dependency = dependency
        self._down_until = 0.0
        self._degraded = False
        self._dirty: set[str] = set()
        self.name = primary.name
        metrics.DEGRADED.labels(dependency).set(0)

    @property
    def degraded(self) -> bool:
        return self._degraded

    def _skip_primary(self) -> bool:
        return self._degraded and time.monotonic() < self._down_until

    def _trip(self, exc: BaseException) -> None:
        self._down_until = time.monotonic() + self._retry_after
        if not self._degraded:
            self._degraded = True
            metrics.DEGRADED.labels(self._dependency).set(1)
            log.error("%s is unreachable (%s: %s); serving limits, dedupe, locks and "
                      "caches from this process until it returns", self._dependency,
                      type(exc).__name__, exc)

    async def _recovered(self) -> None:
        if not self._degraded:
            return
        self._degraded = False
        metrics.DEGRADED.labels(self._dependency).set(0)
        dirty, self._dirty = self._dirty, set()
        try:
            await self._primary.cache_delete(*dirty)
        except self._errors as exc:
            self._dirty |= dirty
            self._trip(exc)
            return
        log.warning("%s is back; shared state is served from it again (%d cache keys "
                    "written meanwhile were invalidated)", self._dependency, len(dirty))

    async def _call(self, primary: Callable[[], Awaitable[T]],
                    fallback: Callable[[], Awaitable[T]]) -> T:
        if not self._skip_primary():
            try:
                result = await primary()
            except LockTimeout:
                raise
            except self._errors as exc:
                self._trip(exc)
            else:
                await self._recovered()
                return result
        return await fallback()

    async def take(self, buckets: list[Bucket]) -> RateDecision:
        async def local() -> RateDecision:
            decision = await self._fallback.take(buckets)
            return RateDecision(decision.allowed, decision.retry_after_s, decision.scope,
                                degraded=True)
        return await self._call(lambda: self._primary.take(buckets), local)

    async def first_seen(self, key: str, ttl_s: int) -> bool:
        return await self._call(lambda: self._primary.first_seen(key, ttl_s),
                                lambda: self._fallback.first_seen(key, ttl_s))

    def conversation_lock(self, key: str, wait_s: float,
                          lease_s: float) -> AbstractAsyncContextManager[None]:
        return self._lock(key, wait_s, lease_s)

    @asynccontextmanager
    async def _lock(self, key: str, wait_s: float, lease_s: float) -> AsyncIterator[None]:
        """The primary's lock if it can be taken, else this process's; a ``LockTimeout``
        (the conversation stayed busy) is not an outage and propagates."""
        async def enter_primary() -> AbstractAsyncContextManager[None] | None:
            held = self._primary.conversation_lock(key, wait_s, lease_s)
            await held.__aenter__()
            return held

        async def none() -> AbstractAsyncContextManager[None] | None:
            return None

        held = await self._call(enter_primary, none)
        if held is not None:
            try:
                yield
            finally:
                await held.__aexit__(None, None, None)
            return
        async with self._fallback.conversation_lock(key, wait_s, lease_s):
            yield

    async def add(self, key: str, amount: int, ttl_s: int) -> int:
        return await self._call(lambda: self._primary.add(key, amount, ttl_s),
                                lambda: self._fallback.add(key, amount, ttl_s))

    async def get_int(self, key: str) -> int | None:
        return await self._call(lambda: self._primary.get_int(key),
                                lambda: self._fallback.get_int(key))

    async def set_int_if_absent(self, key: str, value: int, ttl_s: int) -> bool:
        return await self._call(lambda: self._primary.set_int_if_absent(key, value, ttl_s),
                                lambda: self._fallback.set_int_if_absent(key, value, ttl_s))

    async def cache_get(self, key: str) -> str | None:
        return await self._call(lambda: self._primary.cache_get(key),
                                lambda: self._fallback.cache_get(key))

    async def cache_set(self, key: str, value: str, ttl_s: int) -> None:
        async def local() -> None:
            self._dirty.add(key)
            await self._fallback.cache_set(key, value, ttl_s)
        await self._call(lambda: self._primary.cache_set(key, value, ttl_s), local)

    async def cache_delete(self, *keys: str) -> None:
        async def local() -> None:
            self._dirty.update(keys)
            await self._fallback.cache_delete(*keys)
        await self._call(lambda: self._primary.cache_delete(*keys), local)

    async def ping(self) -> None:
        await self._primary.ping()

    async def close(self) -> None:
        await self._primary.close()
        await self._fallback.close()
