"""Token usage per tenant: per-turn records, monthly totals, and the budget check.

Per-turn usage is stored on the assistant message (no extra round trip). Monthly totals
live in two places: a shared counter (Redis, or in-process) that the budget check reads
on every turn, and the ``usage`` collection, which is the durable record. The ledger
batches its MongoDB increments and flushes them every second and at shutdown, so the
hot path pays no extra database round trip; a counter that is missing (after a restart
or expiry) is seeded from MongoDB before it is trusted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from core.sessions.models import TurnUsage
from core.state.base import SharedState
from observability import metrics

log = logging.getLogger("switchboard.usage")

_MONTH_TTL_S = 40 * 86400


def month_of(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m")


@dataclass(frozen=True, slots=True)
class MonthlyUsage:
    tenant: str
    month: str
    turns: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class UsageStore(Protocol):
    async def add(self, increments: list[MonthlyUsage]) -> None: ...

    async def month(self, tenant: str, month: str) -> MonthlyUsage: ...


class UsageLedger:
    def __init__(self, store: UsageStore, state: SharedState,
                 flush_interval_s: float = 1.0) -> None:
        self._store = store
        self._state = state
        self._interval = flush_interval_s
        self._pending: dict[tuple[str, str], MonthlyUsage] = {}
        self._flusher: asyncio.Task[None] | None = None
        self._flush_lock = asyncio.Lock()

    def _counter(self, tenant: str, month: str) -> str:
        return f"{tenant}:tokens:{month}"

    async def tokens_used(self, tenant: str, now: datetime) -> int:
        month = month_of(now)
        value = await self._state.get_int(self._counter(tenant, month))
        if value is not None:
            return value
        stored = await self._store.month(tenant, month)
        pending = self._pending.get((tenant, month))
        seed = stored.tokens + (pending.tokens if pending else 0)
        await self._state.set_int_if_absent(self._counter(tenant, month), seed, _MONTH_TTL_S)
        return await self._state.get_int(self._counter(tenant, month)) or seed

    async def record(self, tenant: str, usage: TurnUsage, now: datetime) -> None:
        if usage.total_tokens == 0:
            return
        month = month_of(now)
        await self.tokens_used(tenant, now)
        await self._state.add(self._counter(tenant, month), usage.total_tokens, _MONTH_TTL_S)
        before = self._pending.get((tenant, month), MonthlyUsage(tenant, month))
        self._pending[(tenant, month)] = MonthlyUsage(
            tenant, month, before.turns + 1, before.prompt_tokens + usage.prompt_tokens,
            before.completion_tokens + usage.completion_tokens,
            before.cost_usd + usage.cost_usd)
        metrics.LLM_TOKENS.labels(tenant, usage.model, "prompt").inc(usage.prompt_tokens)
        metrics.LLM_TOKENS.labels(tenant, usage.model, "completion").inc(usage.completion_tokens)
        if usage.cost_usd:
            metrics.COST_USD.labels(tenant, usage.model).inc(usage.cost_usd)

    async def month(self, tenant: str, now: datetime) -> MonthlyUsage:
        await self.flush()
        return await self._store.month(tenant, month_of(now))

    async def flush(self) -> None:
        async with self._flush_lock:
            if not self._pending:
                return
            batch, self._pending = list(self._pending.values()), {}
            try:
                await self._store.add(batch)
            except Exception:
                log.exception("usage flush failed; will retry")
                for item in batch:
                    key = (item.tenant, item.month)
                    cur = self._pending.get(key, MonthlyUsage(item.tenant, item.month))
                    self._pending[key] = MonthlyUsage(
                        item.tenant, item.month, cur.turns + item.turns,
                        cur.prompt_tokens + item.prompt_tokens,
                        cur.completion_tokens + item.completion_tokens,
                        cur.cost_usd + item.cost_usd)

    def start(self) -> None:
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            await self.flush()

    async def close(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
            self._flusher = None
        await self.flush()

