"""Streaming into a platform message that can only be edited about once a second.

Slack (``chat.update``) and Discord (message edits) both rate-limit edits per message,
so a reply streams by posting once on the first delta and then showing the accumulated
text at most every ``interval_s``; the final reply replaces it whatever the pace. Both
delivery modules keep their own platform calls and share this bookkeeping.
"""

from __future__ import annotations

import time
from collections.abc import Callable

CURSOR = " ▍"
"""Shown after streamed text while more is coming."""


class PacedText:
    def __init__(self, interval_s: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.text = ""
        self._interval = interval_s
        self._clock = clock
        self._shown_at: float | None = None

    def add(self, delta: str) -> bool:
        """Take a delta; True when the text should be shown now (the first time always,
        then once ``interval_s`` has passed since it was last shown)."""
        self.text += delta
        return self._shown_at is None or self._clock() - self._shown_at >= self._interval

    def shown(self) -> None:
        """Record that the current text was just posted or edited in."""
        self._shown_at = self._clock()

    def preview(self, limit: int | None = None, *, tail: bool = False) -> str:
        """The text so far with the cursor, cut to ``limit`` characters from the start
        (or, with ``tail``, keeping the end)."""
        text = self.text.rstrip()
        if limit is not None and len(text) > limit:
            text = text[-limit:] if tail else text[:limit]
        return text + CURSOR
