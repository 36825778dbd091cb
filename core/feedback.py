"""Feedback on answers (thumbs up/down), stored against the turn and what it cited.

A click names a turn id; the record is only written when that turn belongs to the
clicking user's tenant, so a forged or foreign turn id stores nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol

Rating = Literal["up", "down"]


@dataclass(frozen=True, slots=True)
class FeedbackRecord:
    tenant: str
    channel: str
    turn_id: str
    user_id: str
    rating: Rating
    at: datetime


class FeedbackStore(Protocol):
    async def record(self, feedback: FeedbackRecord) -> bool:
        """Store the rating with the turn's cited sources; False if no such turn."""
        ...

    async def for_turn(self, tenant: str, turn_id: str) -> list[dict[str, object]]: ...

    async def recent(self, tenant: str, limit: int) -> list[dict[str, object]]:
        """The tenant's ratings, newest first (the console's feedback page)."""
        ...
