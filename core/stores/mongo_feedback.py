"""Feedback in MongoDB (``feedback`` collection): one document per user and turn."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from core.feedback import FeedbackRecord

Document = dict[str, Any]


class MongoFeedbackStore:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._messages = db["messages"]
        self._feedback = db["feedback"]

    async def record(self, feedback: FeedbackRecord) -> bool:
        turn = await self._messages.find_one(
            {"tenant": feedback.tenant, "turn_id": feedback.turn_id, "role": "assistant"},
            {"citations": 1, "usage.model": 1})
        if turn is None:
            return False
        key = f"{feedback.tenant}:{feedback.turn_id}:{feedback.user_id}"
        await self._feedback.replace_one({"_id": key}, {
            "_id": key, **asdict(feedback), "citations": turn.get("citations", []),
            "model": (turn.get("usage") or {}).get("model", "")}, upsert=True)
        return True

    async def recent(self, tenant: str, limit: int) -> list[dict[str, object]]:
        """The tenant's ratings, newest first."""
        cursor = self._feedback.find({"tenant": tenant}, {"_id": 0}).sort("at", -1)
        return await cursor.limit(limit).to_list()

    async def for_turn(self, tenant: str, turn_id: str) -> list[dict[str, object]]:
        return await self._feedback.find({"tenant": tenant, "turn_id": turn_id},
                                         {"_id": 0}).to_list()
