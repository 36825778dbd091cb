"""Conversation streams, in process and in Redis Streams: resume after a gap, reset when
a client cannot be caught up, resends recognised, and — in Redis — two workers sharing
one conversation with nothing lost and nothing twice."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from core.state.redis_streams import RedisStreams
from core.turns.streams import ConversationStreams, Event, MemoryStreams
from tests.servers import ServerProcess


@pytest.fixture(params=["memory", "redis"])
async def streams(request: pytest.FixtureRequest) -> AsyncIterator[ConversationStreams]:
    if request.param == "memory":
        made: ConversationStreams = MemoryStreams(buffer=3 if "buffer" in
                                                  request.node.name else 500)
    else:
        redis: ServerProcess = request.getfixturevalue("redis_server")
        made = RedisStreams(redis.url, prefix=f"t{uuid.uuid4().hex[:8]}:",
                            buffer=3 if "buffer" in request.node.name else 500)
    yield made
    await made.close()


async def take(streams: ConversationStreams, after: int, count: int,
               subject: str = "s1") -> list[Event]:
    out = []
    async for event in streams.follow("acme", subject, after):
        out.append(event)
        if len(out) == count:
            break
    return out


async def publish(streams: ConversationStreams, n: int, subject: str = "s1") -> None:
    for i in range(n):
        await streams.publish("acme", subject, {"type": "delta", "text": str(i)})


async def test_resume_replays_what_was_missed_then_follows_live(
        streams: ConversationStreams) -> None:
    await publish(streams, 5)
    follower = asyncio.create_task(take(streams, 2, 4))
    await asyncio.sleep(0.3)  # the follower is live (Redis: it joined the reader's reads)
    await publish(streams, 2)
    events = await asyncio.wait_for(follower, 5)
    assert [e["seq"] for e in events] == [3, 4, 5, 6]
    assert [e["text"] for e in events] == ["2", "3", "4", "0"]


async def test_events_published_during_the_replay_are_not_lost_or_doubled(
        streams: ConversationStreams) -> None:
    await publish(streams, 3)
    seen = []
    async with asyncio.timeout(5):
        async for event in streams.follow("acme", "s1", 0):
            seen.append(event["seq"])
            if event["seq"] == 1:
                await streams.publish("acme", "s1", {"type": "delta", "text": "late"})
            if len(seen) == 4:
                break
    assert seen == [1, 2, 3, 4]


async def test_a_client_behind_the_buffer_or_ahead_of_it_is_reset(
        streams: ConversationStreams) -> None:
    await publish(streams, 6)
    assert (await take(streams, 1, 1))[0]["type"] == "reset"
    assert (await take(streams, 3, 1))[0]["seq"] == 4
    assert (await take(streams, 9, 1, subject="fresh"))[0]["type"] == "reset"


async def test_a_page_resumes_before_a_turn_still_being_answered(
        streams: ConversationStreams) -> None:
    await publish(streams, 2)
    await streams.begin_turn("acme", "s1", "c1")
    await publish(streams, 3)
    assert await streams.resume_point("acme", "s1") == 2
    await streams.end_turn("acme", "s1", "c1")
    assert await streams.resume_point("acme", "s1") == 5


async def test_a_resent_client_id_is_accepted_once_per_conversation(
        streams: ConversationStreams) -> None:
    assert await streams.first_accept("acme", "s1", "c1")
    assert not await streams.first_accept("acme", "s1", "c1")
    assert await streams.first_accept("acme", "s2", "c1")
    assert await streams.first_accept("globex", "s1", "c1")


async def test_two_workers_share_a_conversation_in_order(redis_server: ServerProcess) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}:"
    one, two = RedisStreams(redis_server.url, prefix=prefix), \
        RedisStreams(redis_server.url, prefix=prefix)
    try:
        followers = [asyncio.create_task(take(w, 0, 200)) for w in (one, two)]
        await asyncio.sleep(0.3)

        async def write(worker: RedisStreams, name: str) -> None:
            for i in range(100):
                await worker.publish("acme", "s1", {"type": "delta", "text": f"{name}{i}"})
        await asyncio.gather(write(one, "a"), write(two, "b"))
        got: list[list[Any]] = [await asyncio.wait_for(f, 10) for f in followers]
        for events in got:
            assert [e["seq"] for e in events] == list(range(1, 201))
        assert got[0] == got[1]  # both workers' tabs see the same events in the same order
        assert [e["text"] for e in got[0] if e["text"].startswith("a")] == \
            [f"a{i}" for i in range(100)]
        assert await one.first_accept("acme", "s1", "c9")
        assert not await two.first_accept("acme", "s1", "c9")
    finally:
        await one.close()
        await two.close()


async def test_with_redis_unreachable_a_worker_still_serves_its_own_tabs() -> None:
    down = RedisStreams("redis://127.0.0.1:9", timeout_s=0.5)
    try:
        follower = asyncio.create_task(take(down, 0, 3))
        await asyncio.sleep(0.05)
        assert await down.first_accept("acme", "s1", "c1")
        assert not await down.first_accept("acme", "s1", "c1")
        await down.begin_turn("acme", "s1", "c1")
        await publish(down, 3)
        assert await down.resume_point("acme", "s1") == 0
        events = await asyncio.wait_for(follower, 5)
        assert [e["seq"] for e in events] == [1, 2, 3]
        assert down.degraded
    finally:
        await down.close()
