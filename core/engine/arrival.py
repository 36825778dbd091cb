"""Arrival order within one process, kept up to the conversation lock.

Between a message's arrival and its conversation-lock ticket lie awaits (dedupe, rate
limits: Redis round trips), and two messages of one thread can overtake each other
there. Each message takes a place in its conversation's line the moment its tenant is
known (no await in between), and takes its lock ticket only when every earlier message
of that conversation has taken its own or left the pipeline.
"""

from __future__ import annotations

import asyncio
from collections import deque


class Place:
    def __init__(self, gate: ArrivalGate, key: str, future: asyncio.Future[None]) -> None:
        self._gate, self._key, self._future = gate, key, future
        self._left = False

    async def wait(self) -> None:
        await asyncio.shield(self._future)

    def leave(self) -> None:
        """Let the next message of the conversation go ahead. Safe to call twice."""
        if not self._left:
            self._left = True
            self._gate._leave(self._key, self._future)


class ArrivalGate:
    def __init__(self) -> None:
        self._lines: dict[str, deque[asyncio.Future[None]]] = {}

    def arrive(self, key: str) -> Place:
        line = self._lines.setdefault(key, deque())
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if not line:
            future.set_result(None)
        line.append(future)
        return Place(self, key, future)

    def _leave(self, key: str, future: asyncio.Future[None]) -> None:
        line = self._lines[key]
        line.remove(future)
        if not future.done():
            future.cancel()
        if line:
            if not line[0].done():
                line[0].set_result(None)
        else:
            del self._lines[key]
