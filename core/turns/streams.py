"""Each conversation's outgoing events, numbered, kept briefly, fanned out to its tabs.

A channel whose visitors reconnect (the widget) writes a turn's events into the
conversation's stream instead of a socket, so an answer keeps streaming while a
connection is down. A reconnecting client says the last sequence number it saw and gets
everything after it, then the live events: nothing lost, nothing doubled. A client that
fell further behind than the buffer — or is ahead of it, having seen events this store
never held — gets a ``reset`` and reloads the stored history.

This is the port; ``MemoryStreams`` keeps streams in this process (one worker), and
``core/state/redis_streams.py`` keeps them in Redis Streams, so a visitor can connect to
any worker and resume on any other. The client ids of recently accepted messages live
here too (``first_accept``): a resend after a reconnect, to whichever worker, is not a
second question.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

Event = dict[str, Any]
BUFFER = 500
"""Events kept per conversation (a few turns' worth of deltas)."""
IDLE_S = 900.0
SEEN_CLIENT_IDS = 200


class ConversationStreams(Protocol):
    async def publish(self, tenant: str, subject: str, event: Mapping[str, Any]) -> Event:
        """Append an event; returns it with its sequence number (``seq``)."""
        ...

    async def begin_turn(self, tenant: str, subject: str, client_id: str) -> None:
        """A turn of the conversation is being answered (its events are not stored yet)."""
        ...

    async def end_turn(self, tenant: str, subject: str, client_id: str) -> None: ...

    async def resume_point(self, tenant: str, subject: str) -> int:
        """Where a page that loads the stored history should start following: before the
        first event of a turn still being answered, else the latest event."""
        ...

    async def first_accept(self, tenant: str, subject: str, client_id: str) -> bool:
        """True the first time a client id is offered in this conversation (recently)."""
        ...

    def follow(self, tenant: str, subject: str, after: int) -> AsyncIterator[Event]:
        """Everything after ``after``, then live events until the caller stops."""
        ...

    async def close(self) -> None: ...


@dataclass(slots=True)
class _Stream:
    seq: int = 0
    events: deque[Event] = field(default_factory=lambda: deque(maxlen=BUFFER))
    listeners: set[asyncio.Queue[Event]] = field(default_factory=set)
    inflight: dict[str, int] = field(default_factory=dict)
    """client id of each turn being answered → the sequence number before it began."""
    touched: float = field(default_factory=time.monotonic)
    seen: OrderedDict[str, None] = field(default_factory=OrderedDict)


class MemoryStreams:
    """Streams in this process: every tab of a conversation must reach this worker."""

    name = "in-process"

    def __init__(self, buffer: int = BUFFER) -> None:
        self._streams: dict[tuple[str, str], _Stream] = {}
        self._buffer = buffer

    def _get(self, tenant: str, subject: str) -> _Stream:
        self._sweep()
        key = (tenant, subject)
        stream = self._streams.get(key)
        if stream is None:
            stream = self._streams[key] = _Stream(events=deque(maxlen=self._buffer))
        return stream

    def __len__(self) -> int:
        return len(self._streams)

    async def publish(self, tenant: str, subject: str, event: Mapping[str, Any]) -> Event:
        stream = self._get(tenant, subject)
        stream.seq += 1
        numbered = {**event, "seq": stream.seq}
        stream.events.append(numbered)
        stream.touched = time.monotonic()
        for queue in stream.listeners:
            queue.put_nowait(numbered)
        return numbered

    async def begin_turn(self, tenant: str, subject: str, client_id: str) -> None:
        stream = self._get(tenant, subject)
        stream.inflight.setdefault(client_id, stream.seq)

    async def end_turn(self, tenant: str, subject: str, client_id: str) -> None:
        self._get(tenant, subject).inflight.pop(client_id, None)

    async def resume_point(self, tenant: str, subject: str) -> int:
        stream = self._get(tenant, subject)
        return min(stream.inflight.values(), default=stream.seq)

    async def first_accept(self, tenant: str, subject: str, client_id: str) -> bool:
        seen = self._get(tenant, subject).seen
        if client_id in seen:
            return False
        seen[client_id] = None
        while len(seen) > SEEN_CLIENT_IDS:
            seen.popitem(last=False)
        return True

    async def follow(self, tenant: str, subject: str, after: int) -> AsyncIterator[Event]:
        stream = self._get(tenant, subject)
        queue: asyncio.Queue[Event] = asyncio.Queue()
        stream.listeners.add(queue)
        try:
            # Snapshot before the first yield: what is published while the replay is
            # being sent arrives through the queue instead.
            snapshot = list(stream.events)
            replayed_to = max(after, stream.seq)
            for event in catch_up(snapshot, after, stream.seq):
                yield event
            while True:
                event = await queue.get()
                if event["seq"] > replayed_to:
                    yield event
        finally:
            stream.listeners.discard(queue)

    async def close(self) -> None:
        self._streams.clear()

    def _sweep(self) -> None:
        if len(self._streams) < 1000:
            return
        cutoff = time.monotonic() - IDLE_S
        for key, stream in list(self._streams.items()):
            if stream.listeners or stream.inflight:
                continue
            if stream.seq == 0 or stream.touched < cutoff:  # nothing to resume, or stale
                del self._streams[key]


def catch_up(kept: list[Event], after: int, last: int) -> list[Event]:
    """What a client that saw ``after`` gets from the ``kept`` events (oldest first) of a
    stream whose latest is ``last``: the events it missed, or one ``reset`` when they are
    gone (it fell behind the buffer) or were never here (it is ahead)."""
    oldest = kept[0]["seq"] if kept else last + 1
    behind = after < oldest - 1 and after < last
    ahead = after > last
    if behind or ahead:
        return [{"type": "reset", "seq": last}]
    return [e for e in kept if e["seq"] > after]
