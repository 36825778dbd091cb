"""Rate limits, dedupe, conversation locks and counters: Redis and in-process alike."""

from __future__ import annotations

import asyncio

import pytest

from core.state.base import Bucket, LockTimeout, SharedState


async def test_bucket_allows_capacity_then_refuses_with_retry_after(state: SharedState) -> None:
    bucket = [Bucket("acme:user:u1", 3, "user")]
    assert [(await state.take(bucket)).allowed for _ in range(3)] == [True, True, True]
    refused = await state.take(bucket)
    assert not refused.allowed
    assert refused.scope == "user"
    assert 0 < refused.retry_after_s <= 20.5  # one token every 20 s at 3/min


async def test_buckets_are_all_or_nothing(state: SharedState) -> None:
    tenant = Bucket("acme:tenant", 1, "tenant")
    await state.take([tenant])
    decision = await state.take([tenant, Bucket("acme:user:u2", 5, "user")])
    assert not decision.allowed and decision.scope == "tenant"
    user_only = [Bucket("acme:user:u2", 5, "user")]
    assert [(await state.take(user_only)).allowed for _ in range(5)] == [True] * 5


async def test_same_user_id_in_two_tenants_has_two_buckets(state: SharedState) -> None:
    assert (await state.take([Bucket("acme:user:slack:u1", 1, "user")])).allowed
    assert (await state.take([Bucket("globex:user:slack:u1", 1, "user")])).allowed
    assert not (await state.take([Bucket("acme:user:slack:u1", 1, "user")])).allowed


async def test_dedupe_sees_a_key_once(state: SharedState) -> None:
    assert await state.first_seen("acme:slack:Ev1", 60)
    assert not await state.first_seen("acme:slack:Ev1", 60)
    assert await state.first_seen("globex:slack:Ev1", 60)


async def test_dedupe_key_expires(state: SharedState) -> None:
    assert await state.first_seen("acme:slack:short", 1)
    await asyncio.sleep(1.1)
    assert await state.first_seen("acme:slack:short", 1)


async def test_lock_serves_waiters_in_arrival_order(state: SharedState) -> None:
    order: list[int] = []

    async def worker(n: int) -> None:
        async with state.conversation_lock("acme:memory:t1", 10, 5):
            order.append(n)
            await asyncio.sleep(0.01)

    # Arrival means reaching the lock's server: open the connections first, so that no
    # waiter is delayed by a TCP handshake its successor does not need.
    await asyncio.gather(*(state.ping() for _ in range(8)))
    tasks = []
    for n in range(8):
        tasks.append(asyncio.create_task(worker(n)))
        await asyncio.sleep(0.02)
    await asyncio.gather(*tasks)
    assert order == list(range(8))


async def test_lock_is_exclusive_and_times_out(state: SharedState) -> None:
    async with state.conversation_lock("acme:memory:busy", 5, 5):
        with pytest.raises(LockTimeout):
            async with state.conversation_lock("acme:memory:busy", 0.2, 5):
                pass
    async with state.conversation_lock("acme:memory:busy", 0.5, 5):
        pass


async def test_locks_of_different_conversations_do_not_block(state: SharedState) -> None:
    async with (state.conversation_lock("acme:memory:a", 1, 5),
                state.conversation_lock("globex:memory:a", 0.5, 5)):
        pass


async def test_counters_add_and_seed_once(state: SharedState) -> None:
    assert await state.get_int("acme:tokens:2026-11") is None
    assert await state.set_int_if_absent("acme:tokens:2026-11", 100, 60)
    assert not await state.set_int_if_absent("acme:tokens:2026-11", 5, 60)
    assert await state.add("acme:tokens:2026-11", 25, 60) == 125
    assert await state.get_int("acme:tokens:2026-11") == 125
    assert await state.get_int("globex:tokens:2026-11") is None
