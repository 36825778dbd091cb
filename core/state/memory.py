"""In-process shared state: correct for exactly one process.

Used when ``REDIS_URL`` is unset. The same semantics as the Redis implementation (the
same tests run against both), but nothing is visible to a second worker.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import cast

from core.state.base import Bucket, LockTimeout, RateDecision


class _ExpiringDict:
    def __init__(self) -> None:
        self._items: dict[str, tuple[float, object]] = {}
        self._next_sweep = 0.0

    def get(self, key: str) -> object | None:
        item = self._items.get(key)
        if item is None:
            return None
        if item[0] <= time.monotonic():
            del self._items[key]
            return None
        return item[1]

    def set(self, key: str, value: object, ttl_s: float) -> None:
        now = time.monotonic()
        self._items[key] = (now + ttl_s, value)
        if now >= self._next_sweep:
            self._next_sweep = now + 30
            for k in [k for k, (exp, _) in self._items.items() if exp <= now]:
                del self._items[k]


class _FifoLocks:
    """asyncio.Lock is FIFO-fair; keep one per busy key and drop it when nobody holds it."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def hold(self, key: str, wait_s: float) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            try:
                await asyncio.wait_for(lock.acquire(), wait_s)
            except TimeoutError:
                raise LockTimeout(key) from None
            try:
                yield
            finally:
                lock.release()
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)


class MemoryState:
    name = "in-process"
    degraded = False

    def __init__(self) -> None:
        self._values = _ExpiringDict()
        self._buckets: dict[str, tuple[float, float]] = {}
        self._locks = _FifoLocks()

    async def take(self, buckets: list[Bucket]) -> RateDecision:
        now = time.monotonic()
        refilled: list[float] = []
        for bucket in buckets:
            capacity = float(bucket.per_minute)
            tokens, stamp = self._buckets.get(bucket.key, (capacity, now))
            tokens = min(capacity, tokens + (now - stamp) * capacity / 60.0)
            if tokens < 1.0:
                wait = (1.0 - tokens) * 60.0 / capacity
                return RateDecision(False, round(wait, 3), bucket.scope)
            refilled.append(tokens)
        for bucket, tokens in zip(buckets, refilled, strict=True):
            self._buckets[bucket.key] = (tokens - 1.0, now)
        if len(self._buckets) > 100_000:
            self._buckets = {k: v for k, v in self._buckets.items() if now - v[1] < 120}
        return RateDecision(True)

    async def first_seen(self, key: str, ttl_s: int) -> bool:
        if self._values.get(key) is not None:
            return False
        self._values.set(key, True, ttl_s)
        return True

    def conversation_lock(self, key: str, wait_s: float,
                          lease_s: float) -> AbstractAsyncContextManager[None]:
        return self._locks.hold(key, wait_s)

    async def add(self, key: str, amount: int, ttl_s: int) -> int:
        value = cast(int, self._values.get(key) or 0) + amount
        self._values.set(key, value, ttl_s)
        return value

    async def get_int(self, key: str) -> int | None:
        value = self._values.get(key)
        return None if value is None else cast(int, value)

    async def set_int_if_absent(self, key: str, value: int, ttl_s: int) -> bool:
        if self._values.get(key) is not None:
            return False
        self._values.set(key, value, ttl_s)
        return True

    async def cache_get(self, key: str) -> str | None:
        return cast(str | None, self._values.get(f"cache:{key}"))

    async def cache_set(self, key: str, value: str, ttl_s: int) -> None:
        self._values.set(f"cache:{key}", value, ttl_s)

    async def cache_delete(self, *keys: str) -> None:
        for key in keys:
            self._values.set(f"cache:{key}", None, 0)

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        return None
