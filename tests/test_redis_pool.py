"""Turns in flight beyond the Redis pool's size queue for a connection instead of failing.

redis-py's asyncio pool defaults to 100 connections and raises ``MaxConnectionsError``
beyond that; under load that turned into apologies and lost messages. The pool is now a
blocking one of a configured size.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from adapters.memory import MemoryChannel
from core.engine import EngineSettings
from core.state.base import Bucket
from core.state.redis import RedisState
from tests.conftest import EngineKit, tenant
from tests.servers import ServerProcess


async def test_a_thousand_simultaneous_calls_queue_for_the_default_pool(
        redis_server: ServerProcess) -> None:
    state = RedisState(redis_server.url, prefix=f"t{uuid.uuid4().hex[:8]}:")
    try:
        async def one(n: int) -> bool:
            await state.take([Bucket(f"acme:user:u{n}", 100, "user")])
            async with state.conversation_lock(f"acme:memory:t{n}", 10, 5):
                return await state.first_seen(f"acme:memory:m{n}", 60)

        results = await asyncio.gather(*(one(n) for n in range(1000)),
                                       return_exceptions=True)
        failures = [r for r in results if r is not True]
        assert failures == []
    finally:
        await state.close()


@pytest.fixture
async def state(redis_server: ServerProcess) -> AsyncIterator[RedisState]:
    """Every Redis call of the engine under test shares one pool of 8 connections."""
    small = RedisState(redis_server.url, prefix=f"t{uuid.uuid4().hex[:8]}:",
                       max_connections=8, pool_timeout_s=30)
    yield small
    await small.close()


async def test_a_thousand_simultaneous_turns_on_a_small_pool_all_answer(
        make_engine: Callable[..., Any]) -> None:
    kit: EngineKit = await make_engine(
        tenant("acme", limits={"user_per_minute": 1000, "tenant_per_minute": 10_000}),
        settings=EngineSettings(lock_wait_s=30))
    channel = MemoryChannel(kit.engine, "acme")
    deliveries = await asyncio.gather(*(
        channel.send(f"question {n}", thread=f"t{n % 50}", user=f"u{n % 200}")
        for n in range(1000)))
    outcomes = [d.result.outcome for d in deliveries]
    assert outcomes.count("answered") == 1000, {o: outcomes.count(o) for o in outcomes}
