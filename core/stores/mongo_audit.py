"""Admin command audit records in MongoDB (``audit`` collection)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from pymongo import ASCENDING, DESCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase

from core.commands.audit import AuditRecord

Document = dict[str, Any]


class MongoAuditLog:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._audit = db["audit"]

    INDEXES = {"audit": [IndexModel([("tenant", ASCENDING), ("at", DESCENDING)],
                                    name="tenant_time")]}
    """The indexes ``ensure_indexes`` creates, per collection (``deploy plan`` checks them)."""

    async def ensure_indexes(self) -> None:
        await self._audit.create_indexes(self.INDEXES["audit"])

    async def record(self, entry: AuditRecord) -> None:
        await self._audit.insert_one(asdict(entry))

    async def recent(self, tenant: str, limit: int) -> list[AuditRecord]:
        docs = await self._audit.find({"tenant": tenant}, projection={"_id": 0}).sort(
            "at", DESCENDING).limit(limit).to_list()
        return [AuditRecord(**d) for d in docs]
