"""Each conversation's outgoing events, numbered, kept briefly, fanned out to its tabs.

The engine writes a turn's events here, not to a socket, so an answer keeps streaming
while the visitor's connection is down. A reconnecting client says the last sequence
number it saw and gets everything after it, then the live events: nothing lost, nothing
doubled. Events are kept in this process (sticky routing per conversation when several
web workers serve the widget); a client that fell further behind than the buffer gets a
``reset`` and reloads the history from the session store.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

Event = dict[str, Any]
BUFFER = 500
IDLE_S = 900.0


@dataclass(slots=True)
class ConversationStream:
    seq: int = 0
    events: deque[Event] = field(default_factory=lambda: deque(maxlen=BUFFER))
    listeners: set[asyncio.Queue[Event]] = field(default_factory=set)
    inflight_from: int | None = None
    """Sequence number before the first event of the turns being answered, if any."""
    inflight: int = 0
    touched: float = field(default_factory=time.monotonic)
    seen: OrderedDict[str, None] = field(default_factory=OrderedDict)
    """Client ids of recently accepted messages: a resend is not a second question.
    Kept here so it is swept with the stream."""

    def publish(self, event: Event) -> Event:
        self.seq += 1
        numbered = {**event, "seq": self.seq}
        self.events.append(numbered)
        self.touched = time.monotonic()
        for queue in self.listeners:
            queue.put_nowait(numbered)
        return numbered

    def begin_turn(self) -> None:
        if self.inflight == 0:
            self.inflight_from = self.seq
        self.inflight += 1

    def end_turn(self) -> None:
        self.inflight -= 1
        if self.inflight == 0:
            self.inflight_from = None

    def resume_point(self) -> int:
        """Where a fresh page should start replaying: before an answer in progress (its
        turn is not in the stored history yet), else at the end."""
        return self.seq if self.inflight_from is None else self.inflight_from

    async def follow(self, after: int) -> AsyncIterator[Event]:
        """Everything after ``after``, then live events until the caller stops."""
        queue: asyncio.Queue[Event] = asyncio.Queue()
        self.listeners.add(queue)
        try:
            # Snapshot before the first yield: what is published while the replay is
            # being sent arrives through the queue instead.
            snapshot = list(self.events)
            replayed_to = max(after, self.seq)
            oldest = snapshot[0]["seq"] if snapshot else self.seq + 1
            behind = after < oldest - 1 and after < self.seq  # fell out of the buffer
            ahead = after > self.seq  # saw events this process never made (restart,
            # or another web worker): only the stored history can catch it up
            if behind or ahead:
                yield {"type": "reset", "seq": self.seq}
            else:
                for event in snapshot:
                    if event["seq"] > after:
                        yield event
            while True:
                event = await queue.get()
                if event["seq"] > replayed_to:
                    yield event
        finally:
            self.listeners.discard(queue)


class Streams:
    """All conversation streams of this process, keyed by (tenant, subject)."""

    def __init__(self) -> None:
        self._streams: dict[tuple[str, str], ConversationStream] = {}

    def get(self, tenant: str, subject: str) -> ConversationStream:
        self._sweep()
        key = (tenant, subject)
        stream = self._streams.get(key)
        if stream is None:
            stream = self._streams[key] = ConversationStream()
        return stream

    def __len__(self) -> int:
        return len(self._streams)

    def _sweep(self) -> None:
        if len(self._streams) < 1000:
            return
        cutoff = time.monotonic() - IDLE_S
        for key, stream in list(self._streams.items()):
            if stream.listeners or stream.inflight_from is not None:
                continue
            if stream.seq == 0 or stream.touched < cutoff:  # nothing to resume, or stale
                del self._streams[key]
