"""Conversation storage in MongoDB, designed for real MongoDB semantics.

Collection ``messages``, one document per message. Indexes:

* ``thread_recent`` (tenant, channel, thread, at desc): the last N messages of a thread;
* ``user_threads`` (tenant, user_id, at desc): a user's threads, and "forget me";
* ``tenant_time`` (tenant, at): per-tenant statistics;
* ``platform_id`` (tenant, channel, platform_message_id): edits and deletions;
* ``retention`` (expires_at, TTL 0): per-tenant retention, computed at write time.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, PyMongoError

from core.sessions.models import (
    ConversationKey,
    StoredMessage,
    TenantStats,
    ThreadSummary,
    TurnUsage,
)
from core.sessions.store import StoreUnavailable

Document = dict[str, Any]
DUPLICATE_KEY = 11000

INDEXES = [
    IndexModel([("tenant", ASCENDING), ("channel", ASCENDING), ("thread", ASCENDING),
                ("at", DESCENDING)], name="thread_recent"),
    IndexModel([("tenant", ASCENDING), ("user_id", ASCENDING), ("at", DESCENDING)],
               name="user_threads"),
    IndexModel([("tenant", ASCENDING), ("at", ASCENDING)], name="tenant_time"),
    IndexModel([("tenant", ASCENDING), ("channel", ASCENDING),
                ("platform_message_id", ASCENDING)], name="platform_id"),
    IndexModel([("expires_at", ASCENDING)], name="retention", expireAfterSeconds=0),
]


def _message_id(m: StoredMessage) -> str:
    """Deterministic, so a repeated write stores nothing twice; and ordered question
    before answer, because ``_id`` breaks ties of ``at`` (BSON dates keep milliseconds,
    and both messages of a fast turn often share one)."""
    return f"{m.turn_id}:{0 if m.role == 'user' else 1}"


def _to_doc(m: StoredMessage) -> Document:
    doc: Document = {
        **({"_id": _message_id(m)} if m.turn_id else {}),
        "tenant": m.key.tenant, "channel": m.key.channel, "thread": m.key.thread,
        "role": m.role, "text": m.text, "user_id": m.user_id, "turn_id": m.turn_id,
        "at": m.at, "expires_at": m.expires_at,
    }
    if m.platform_message_id:
        doc["platform_message_id"] = m.platform_message_id
    if m.author_name:
        doc["author_name"] = m.author_name
    if m.role == "assistant":
        doc["kind"] = m.kind
        doc["usage"] = {"model": m.usage.model, "prompt_tokens": m.usage.prompt_tokens,
                        "completion_tokens": m.usage.completion_tokens,
                        "cost_usd": m.usage.cost_usd}
        if m.citations:
            doc["citations"] = list(m.citations)
        if m.follow_ups:
            doc["follow_ups"] = list(m.follow_ups)
        if m.trace:
            doc["trace"] = m.trace
        if m.grounding:
            doc["grounding"] = m.grounding
        if m.confidence is not None:
            doc["confidence"] = m.confidence
    return doc


def _from_doc(d: Document) -> StoredMessage:
    usage = d.get("usage") or {}
    return StoredMessage(
        key=ConversationKey(d["tenant"], d["channel"], d["thread"]),
        role=d["role"], text=d.get("text", ""), user_id=d.get("user_id", ""),
        turn_id=d.get("turn_id", ""), at=d["at"], expires_at=d["expires_at"],
        platform_message_id=d.get("platform_message_id", ""),
        author_name=d.get("author_name", ""), kind=d.get("kind", ""),
        usage=TurnUsage(**usage) if usage else TurnUsage(),
        citations=tuple(d.get("citations", ())), trace=d.get("trace"),
        follow_ups=tuple(d.get("follow_ups", ())), grounding=d.get("grounding", ""),
        confidence=d.get("confidence"),
    )


class MongoSessionStore:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._messages = db["messages"]

    INDEXES = {"messages": INDEXES}
    """The indexes ``ensure_indexes`` creates, per collection (``deploy plan`` checks them)."""

    async def ensure_indexes(self) -> None:
        await self._messages.create_indexes(INDEXES)

    async def recent(self, key: ConversationKey, limit: int) -> list[StoredMessage]:
        return await self._last(key, limit, {"usage": 0, "citations": 0, "trace": 0})

    async def transcript(self, key: ConversationKey, limit: int) -> list[StoredMessage]:
        return await self._last(key, limit, {"usage": 0})

    async def _last(self, key: ConversationKey, limit: int, projection: Document
                    ) -> list[StoredMessage]:
        if limit <= 0:
            return []
        cursor = self._messages.find(
            {"tenant": key.tenant, "channel": key.channel, "thread": key.thread},
            projection=projection,
        ).sort([("at", DESCENDING), ("_id", DESCENDING)]).limit(limit)
        try:
            docs = await cursor.to_list()
        except PyMongoError as exc:
            raise StoreUnavailable(f"MongoDB is unreachable: {exc}") from exc
        return [_from_doc(d) for d in reversed(docs)]

    async def append(self, messages: list[StoredMessage]) -> None:
        """Messages of a turn carry a deterministic ``_id`` (``_message_id``), so
        repeating the write (after a timeout whose insert did land) stores nothing twice."""
        try:
            await self._messages.insert_many([_to_doc(m) for m in messages], ordered=False)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            if not errors or any(e.get("code") != DUPLICATE_KEY for e in errors):
                raise StoreUnavailable(f"storing the turn failed: {exc}") from exc
        except PyMongoError as exc:
            raise StoreUnavailable(f"MongoDB is unreachable: {exc}") from exc

    async def has_message(self, key: ConversationKey, platform_message_id: str) -> bool:
        try:
            found = await self._messages.find_one(
                {"tenant": key.tenant, "channel": key.channel, "thread": key.thread,
                 "role": "user", "platform_message_id": platform_message_id},
                {"_id": 1})
        except PyMongoError as exc:
            raise StoreUnavailable(f"MongoDB is unreachable: {exc}") from exc
        return found is not None

    async def forget_thread(self, key: ConversationKey) -> int:
        result = await self._messages.delete_many(
            {"tenant": key.tenant, "channel": key.channel, "thread": key.thread,
             "role": "user"})
        redacted = await self._messages.update_many(
            {"tenant": key.tenant, "channel": key.channel, "thread": key.thread,
             "role": "assistant"},
            {"$set": {"text": "", "thread": f"forgotten:{key.thread}"},
             "$unset": {"user_id": "", "citations": ""}})
        return result.deleted_count + redacted.modified_count

    async def remove_turn(self, key: ConversationKey, platform_message_id: str
                          ) -> tuple[str, str] | None:
        scope = {"tenant": key.tenant, "channel": key.channel, "thread": key.thread}
        question = await self._messages.find_one(
            {**scope, "role": "user", "platform_message_id": platform_message_id},
            {"turn_id": 1})
        if question is None:
            return None
        turn_id = str(question["turn_id"])
        reply = await self._messages.find_one({**scope, "role": "assistant",
                                               "turn_id": turn_id},
                                              {"platform_message_id": 1})
        await self._messages.delete_many({**scope, "turn_id": turn_id})
        return turn_id, str((reply or {}).get("platform_message_id", ""))

    async def forget_user(self, tenant: str, user_id: str) -> int:
        result = await self._messages.delete_many(
            {"tenant": tenant, "user_id": user_id, "role": "user"})
        redacted = await self._messages.update_many(
            {"tenant": tenant, "user_id": user_id, "role": "assistant"},
            {"$set": {"text": "", "thread": "forgotten"},
             "$unset": {"user_id": "", "citations": "", "author_name": ""}})
        return result.deleted_count + redacted.modified_count

    async def user_threads(self, tenant: str, user_id: str, limit: int) -> list[ThreadSummary]:
        """Newest threads first, from the user's most recent messages (``user_threads`` index)."""
        return await self._summaries({"tenant": tenant, "user_id": user_id}, limit, 500)

    async def _summaries(self, query: Document, limit: int, scan: int) -> list[ThreadSummary]:
        """Threads of the newest matching messages, newest first. Grouped here rather than
        with ``$group`` on a compound key, which the embedded MongoDB-wire server does not
        evaluate; the scan is bounded."""
        cursor = self._messages.find(
            query, projection={"_id": 0, "channel": 1, "thread": 1, "at": 1},
        ).sort("at", DESCENDING).limit(max(limit * 50, scan))
        summaries: dict[tuple[str, str], ThreadSummary] = {}
        async for d in cursor:
            key = (d["channel"], d["thread"])
            seen = summaries.get(key)
            summaries[key] = ThreadSummary(d["channel"], d["thread"],
                                           seen.last_at if seen else d["at"],
                                           (seen.messages if seen else 0) + 1)
        return list(summaries.values())[:limit]

    async def stats(self, tenant: str, since: datetime) -> TenantStats:
        match = {"tenant": tenant, "at": {"$gte": since}}
        turns = await self._messages.count_documents({**match, "role": "assistant"})
        users = await self._messages.distinct("user_id", {**match, "role": "user"})
        threads = await self._messages.distinct("thread", match)
        return TenantStats(turns=turns, users=len(users), threads=len(threads))

    async def since(self, tenant: str, since: datetime, limit: int) -> list[StoredMessage]:
        cursor = self._messages.find({"tenant": tenant, "at": {"$gte": since}},
                                     projection={"trace": 0}).sort("at", DESCENDING)
        return [_from_doc(d) for d in await cursor.limit(limit).to_list()]

    async def threads(self, tenant: str, limit: int) -> list[ThreadSummary]:
        return await self._summaries({"tenant": tenant}, limit, 1000)

    async def of_turns(self, tenant: str, turn_ids: list[str]) -> list[StoredMessage]:
        if not turn_ids:
            return []
        cursor = self._messages.find({"tenant": tenant, "turn_id": {"$in": turn_ids[:1000]}},
                                     projection={"trace": 0})
        return [_from_doc(d) for d in await cursor.to_list()]

    async def purge_expired(self, now: datetime) -> int:
        result = await self._messages.delete_many({"expires_at": {"$lte": now}})
        return result.deleted_count
