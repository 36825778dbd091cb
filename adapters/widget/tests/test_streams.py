"""Conversation streams: resume after a gap, reset when a client cannot be caught up."""

from __future__ import annotations

import asyncio
from typing import Any

from adapters.widget import streams
from adapters.widget.streams import ConversationStream


async def take(stream: ConversationStream, after: int, count: int) -> list[dict[str, Any]]:
    out = []
    async for event in stream.follow(after):
        out.append(event)
        if len(out) == count:
            break
    return out


async def test_resume_replays_what_was_missed_then_follows_live() -> None:
    stream = ConversationStream()
    for n in range(5):
        stream.publish({"type": "delta", "text": str(n)})
    follower = asyncio.create_task(take(stream, 2, 4))
    await asyncio.sleep(0)
    stream.publish({"type": "delta", "text": "5"})
    stream.publish({"type": "delta", "text": "6"})
    events = await asyncio.wait_for(follower, 2)
    assert [e["seq"] for e in events] == [3, 4, 5, 6]
    assert not stream.listeners


async def test_events_published_during_the_replay_are_not_lost_or_doubled() -> None:
    stream = ConversationStream()
    for n in range(3):
        stream.publish({"type": "delta", "text": str(n)})
    seen = []
    async for event in stream.follow(0):
        seen.append(event["seq"])
        if event["seq"] == 1:
            stream.publish({"type": "delta", "text": "late"})
        if len(seen) == 4:
            break
    assert seen == [1, 2, 3, 4]


async def test_a_client_behind_the_buffer_or_ahead_of_it_is_reset(monkeypatch: Any) -> None:
    monkeypatch.setattr(streams, "BUFFER", 3)
    stream = ConversationStream()
    for n in range(6):
        stream.publish({"type": "delta", "text": str(n)})
    assert (await take(stream, 1, 1))[0]["type"] == "reset"
    assert (await take(stream, 3, 1))[0]["seq"] == 4
    fresh = ConversationStream()  # e.g. another web worker, or after a restart
    assert (await take(fresh, 7, 1))[0]["type"] == "reset"
