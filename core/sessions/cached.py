"""A history cache in front of the session store: one database round trip per turn.

The recent messages of a thread are cached in shared state (Redis, or in-process) under
a tenant-scoped key. Writes happen only while the engine holds the conversation lock,
so read-modify-write of the cached window is safe across workers. A miss loads from the
store; deletions invalidate; cached messages past their retention are dropped on read,
and the cache expires after ``ttl_s`` so it never outlives retention by much.
"""

from __future__ import annotations

import json
from collections import OrderedDict
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

_FORMAT = "v2"
"""The cached window is a header line (format, and whether the window holds the whole
thread) and one line per message: ``turn_id<TAB>role<TAB>json``, the prefix being what
appends dedupe by. Appending a turn adds two lines to the text instead of decoding and
re-encoding the window (up to 50 messages, which was 9 % of a widget turn's CPU), and
the ids it dedupes by are read without decoding JSON. Anything else in the cache (an
older format) is a miss."""
_DECODED_KEPT = 512


def _dedupe_key(turn_id: str, role: str) -> str:
    """The line's prefix: what appends dedupe by (the JSON holds the exact values)."""
    return f"{turn_id.replace(chr(9), ' ').replace(chr(10), ' ')}\t{role}"


def _line(m: StoredMessage) -> str:
    return f"{_dedupe_key(m.turn_id, m.role)}\t" + json.dumps(
        {"id": m.turn_id, "r": m.role, "t": m.text, "u": m.user_id, "at": m.at.isoformat(),
         "exp": m.expires_at.isoformat(), "pm": m.platform_message_id, "k": m.kind},
        separators=(",", ":"))


def _encode(lines: list[str], complete: bool) -> str:
    return "\n".join([f"{_FORMAT} {int(complete)}", *lines])


def _split(raw: str) -> tuple[list[str], bool] | None:
    """The message lines and the completeness flag, or None for a foreign format."""
    header, _, rest = raw.partition("\n")
    name, _, flag = header.partition(" ")
    if name != _FORMAT or flag not in ("0", "1"):
        return None
    return (rest.split("\n") if rest else []), flag == "1"


def _message(key: ConversationKey, line: str) -> StoredMessage:
    m: dict[str, Any] = json.loads(line.split("\t", 2)[2])
    return StoredMessage(key, m["r"], m["t"], m["u"], m["id"],
                         datetime.fromisoformat(m["at"]), datetime.fromisoformat(m["exp"]),
                         m["pm"], kind=m["k"], usage=TurnUsage())


class CachedSessionStore:
    def __init__(self, store: SessionStore, cache: SharedState, *, window: int = 50,
                 ttl_s: int = 3600) -> None:
        self._store = store
        self._cache = cache
        self._window = window
        self._ttl = ttl_s
        self._decoded: OrderedDict[str, list[StoredMessage]] = OrderedDict()
        """Windows decoded lately, by their cached text: the text a turn writes is the
        one the thread's next turn reads."""

    def _decode(self, key: ConversationKey, lines: list[str], raw: str) -> list[StoredMessage]:
        messages = self._decoded.get(raw)
        if messages is not None and messages[:1] and messages[0].key == key:
            self._decoded.move_to_end(raw)
            return messages
        messages = [_message(key, line) for line in lines]
        self._decoded[raw] = messages
        if len(self._decoded) > _DECODED_KEPT:
            self._decoded.popitem(last=False)
        return messages

    @staticmethod
    def _key(key: ConversationKey) -> str:
        return f"{key.tenant}:hist:{key.channel}:{key.thread}"

    async def recent(self, key: ConversationKey, limit: int) -> list[StoredMessage]:
        if limit <= 0:
            return []
        if limit > self._window:
            return await self._store.recent(key, limit)
        raw = await self._cache.cache_get(self._key(key))
        cached = _split(raw) if raw is not None else None
        if cached is not None and raw is not None:
            lines, complete = cached
            if complete or len(lines) >= limit:
                now = datetime.now(UTC)
                messages = self._decode(key, lines, raw)
                return [m for m in messages if m.expires_at > now][-limit:]
        messages = await self._store.recent(key, self._window)
        await self._cache.cache_set(
            self._key(key), _encode([_line(m) for m in messages],
                                    len(messages) < self._window), self._ttl)
        return messages[-limit:]

    async def transcript(self, key: ConversationKey, limit: int) -> list[StoredMessage]:
        return await self._store.transcript(key, limit)

    async def append(self, messages: list[StoredMessage]) -> None:
        await self._store.append(messages)
        for key in {m.key for m in messages}:
            raw = await self._cache.cache_get(self._key(key))
            cached = _split(raw) if raw is not None else None
            if cached is None:
                if raw is not None:  # a foreign format: the next read reloads
                    await self._cache.cache_delete(self._key(key))
                continue
            lines, complete = cached
            held = {"\t".join(line.split("\t", 2)[:2]) for line in lines}
            merged = lines + [_line(m) for m in messages if m.key == key and
                              not (m.turn_id and _dedupe_key(m.turn_id, m.role) in held)]
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

    async def since(self, tenant: str, since: datetime, limit: int) -> list[StoredMessage]:
        return await self._store.since(tenant, since, limit)

    async def threads(self, tenant: str, limit: int) -> list[ThreadSummary]:
        return await self._store.threads(tenant, limit)

    async def of_turns(self, tenant: str, turn_ids: list[str]) -> list[StoredMessage]:
        return await self._store.of_turns(tenant, turn_ids)
