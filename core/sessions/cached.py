"""A history cache in front of the session store: one database round trip per turn.

The recent messages of a thread are cached in shared state (Redis, or in-process) under
a tenant-scoped key. Writes happen only while the engine holds the conversation lock,
so read-modify-write of the cached window is safe across workers. A miss loads from the
store; deletions invalidate; cached messages past their retention are dropped on read,
and the cache expires after ``ttl_s`` so it never outlives retention by much.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from core.sessions.models import (
    ConversationKey,
    StoredMessage,
    TenantStats,
    ThreadSummary,
    TurnUsage,
)
from core.sessions.store import SessionStore
from core.state.base import SharedState


def _encode(messages: list[StoredMessage], complete: bool) -> str:
    return json.dumps({"complete": complete, "messages": [
        {"r": m.role, "t": m.text, "u": m.user_id, "id": m.turn_id, "at": m.at.isoformat(),
         "exp": m.expires_at.isoformat(), "pm": m.platform_message_id, "k": m.kind}
        for m in messages]}, separators=(",", ":"))


def _decode(key: ConversationKey, raw: str) -> tuple[list[StoredMessage], bool]:
    data: dict[str, Any] = json.loads(raw)
    messages = [StoredMessage(key, m["r"], m["t"], m["u"], m["id"],
                              datetime.fromisoformat(m["at"]),
                              datetime.fromisoformat(m["exp"]), m["pm"], kind=m["k"],
                              usage=TurnUsage())
                for m in data["messages"]]
    return messages, bool(data["complete"])


class CachedSessionStore:
    def __init__(self, store: SessionStore, cache: SharedState, *, window: int = 50,
                 ttl_s: int = 3600) -> None:
        self._store = store
        self._cache = cache
        self._window = window
        self._ttl = ttl_s

    @staticmethod
    def _key(key: ConversationKey) -> str:
        return f"{key.tenant}:hist:{key.channel}:{key.thread}"

    async def recent(self, key: ConversationKey, limit: int) -> list[StoredMessage]:
        if limit <= 0:
            return []
        if limit > self._window:
            return await self._store.recent(key, limit)
        raw = await self._cache.cache_get(self._key(key))
        if raw is not None:
            messages, complete = _decode(key, raw)
            if complete or len(messages) >= limit:
                now = datetime.now(UTC)
                return [m for m in messages if m.expires_at > now][-limit:]
        messages = await self._store.recent(key, self._window)
        await self._cache.cache_set(self._key(key),
                                    _encode(messages, len(messages) < self._window), self._ttl)
        return messages[-limit:]

    async def transcript(self, key: ConversationKey, limit: int) -> list[StoredMessage]:
        return await self._store.transcript(key, limit)

    async def append(self, messages: list[StoredMessage]) -> None:
        await self._store.append(messages)
        for key in {m.key for m in messages}:
            raw = await self._cache.cache_get(self._key(key))
            if raw is None:
                continue
            cached, complete = _decode(key, raw)
            held = {(m.turn_id, m.role) for m in cached if m.turn_id}
            merged = cached + [m for m in messages if m.key == key and
                               (m.turn_id, m.role) not in held]
            complete = complete and len(merged) <= self._window
            await self._cache.cache_set(self._key(key),
                                        _encode(merged[-self._window:], complete), self._ttl)

    async def has_message(self, key: ConversationKey, platform_message_id: str) -> bool:
        return await self._store.has_message(key, platform_message_id)

    async def forget_thread(self, key: ConversationKey) -> int:
        await self._cache.cache_delete(self._key(key))
        return await self._store.forget_thread(key)

    async def remove_turn(self, key: ConversationKey, platform_message_id: str
                          ) -> tuple[str, str] | None:
        await self._cache.cache_delete(self._key(key))
        return await self._store.remove_turn(key, platform_message_id)

    async def forget_user(self, tenant: str, user_id: str) -> int:
        threads = await self._store.user_threads(tenant, user_id, 10_000)
        await self._cache.cache_delete(*(self._key(ConversationKey(tenant, t.channel, t.thread))
                                         for t in threads))
        return await self._store.forget_user(tenant, user_id)

    async def user_threads(self, tenant: str, user_id: str, limit: int) -> list[ThreadSummary]:
        return await self._store.user_threads(tenant, user_id, limit)

    async def stats(self, tenant: str, since: datetime) -> TenantStats:
        return await self._store.stats(tenant, since)

    async def purge_expired(self, now: datetime) -> int:
        return await self._store.purge_expired(now)
