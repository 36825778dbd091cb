"""Monthly usage totals per tenant in MongoDB (``usage`` collection, one doc per month)."""

from __future__ import annotations

from typing import Any

from pymongo import UpdateOne
from pymongo.asynchronous.database import AsyncDatabase

from core.usage import MonthlyUsage

Document = dict[str, Any]


class MongoUsageStore:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._usage = db["usage"]

    async def add(self, increments: list[MonthlyUsage]) -> None:
        await self._usage.bulk_write([
            UpdateOne(
                {"_id": f"{u.tenant}:{u.month}"},
                {"$inc": {"turns": u.turns, "prompt_tokens": u.prompt_tokens,
                          "completion_tokens": u.completion_tokens, "cost_usd": u.cost_usd},
                 "$setOnInsert": {"tenant": u.tenant, "month": u.month}},
                upsert=True)
            for u in increments
        ], ordered=False)

    async def month(self, tenant: str, month: str) -> MonthlyUsage:
        doc = await self._usage.find_one({"_id": f"{tenant}:{month}"})
        if doc is None:
            return MonthlyUsage(tenant, month)
        return MonthlyUsage(tenant, month, int(doc.get("turns", 0)),
                            int(doc.get("prompt_tokens", 0)),
                            int(doc.get("completion_tokens", 0)),
                            float(doc.get("cost_usd", 0.0)))
