"""Text deltas merged to a readable pace before they enter the outbound chain.

A model streams a token at a time: an instant provider sends a whole answer's 30 tokens
within a millisecond, a hosted one about 50 a second. Each delta that enters the chain
costs a trip through every stage, a conversation-stream event (a Redis ``XADD`` with
several workers) and a WebSocket frame, for text no reader sees at that pace. The first
delta of a turn goes at once (it is what "time to first delta" measures); after it, text
is sent at most every ``interval_s`` (20 updates a second by default), merged, and
whatever is held is sent before any other event of the turn, so tool chips and the reply
always follow the text they come after and the deltas still add up to the reply.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

DELTA_INTERVAL_S = 0.05


class DeltaCoalescer:
    """Buffers text between sends; a timer sends what is held when the model pauses."""

    def __init__(self, send: Callable[[str], Awaitable[None]],
                 interval_s: float = DELTA_INTERVAL_S) -> None:
        self._send = send
        self._interval_s = interval_s
        self._held: list[str] = []
        self._last = float("-inf")
        self._timer: asyncio.TimerHandle | None = None
        self._late: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    async def add(self, text: str) -> None:
        if not text:
            return
        self._held.append(text)
        loop = asyncio.get_running_loop()
        wait = self._last + self._interval_s - loop.time()
        if wait <= 0:
            await self.flush()
        elif self._timer is None:
            self._timer = loop.call_later(wait, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._late = asyncio.get_running_loop().create_task(self.flush())

    async def flush(self) -> None:
        """Send what is held now (before a tool event, the reply, or the timer's turn)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        async with self._lock:
            if not self._held:
                return
            text = "".join(self._held)
            self._held.clear()
            self._last = asyncio.get_running_loop().time()
            await self._send(text)

    async def close(self) -> None:
        """Send the rest and wait for a timer's send in progress; after this nothing more
        is sent."""
        await self.flush()
        if self._late is not None:
            await self._late
            self._late = None
