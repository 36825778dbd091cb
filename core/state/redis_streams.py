"""Conversation streams in Redis Streams: any web worker can serve any tab.

Each conversation is one stream (``XADD`` with ``MAXLEN``), numbered by its own counter
so its sequence numbers are the small integers browsers already resume from: a Lua
script takes the next number and appends the event under the id ``0-<seq>`` in one
step, so two workers publishing at once cannot interleave ids and numbers. A follower
replays what it missed with ``XRANGE`` and then receives live events from one reader
task per process, which ``XREAD``s every stream this process has followers for on a
connection of its own (a blocked read must never hold a pooled connection). Everything
arrives in the stream's order, whichever worker wrote it.

Turns still being answered are a sorted set (client id → the number before its first
event), so a fresh page on any worker resumes before them; recently accepted client ids
are ``SET NX`` keys, so a resend to another worker is not a second question. Every key
expires after ``IDLE_S`` without activity.

While Redis is unreachable the streams degrade instead of failing the turn: events go
to this process's followers only, numbered on from the last number this process saw
(and Redis's counter is moved past them when it returns, so no follower drops a later
event as old); client ids and turns in progress are kept in this process. A tab that
reconnects to another worker during the outage gets a ``reset`` and reloads the stored
history, as without Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Mapping
from typing import Any, cast

from redis.asyncio import BlockingConnectionPool, Redis
from redis.exceptions import RedisError

from core.turns.streams import BUFFER, IDLE_S, Event, catch_up
from observability import metrics

log = logging.getLogger("switchboard.streams")
_DOWN = (RedisError, OSError)

_PUBLISH = """
local seq = redis.call('INCR', KEYS[2])
if seq <= tonumber(ARGV[4]) then
  seq = tonumber(ARGV[4]) + 1
  redis.call('SET', KEYS[2], seq)
end
redis.call('XADD', KEYS[1], 'MAXLEN', ARGV[2], '0-' .. seq, 'e', ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
return seq
"""
BLOCK_MS = 100
"""How long one read waits for new events; a stream followed for the first time joins
the next read, so its live events may wait this long once."""
SEEN_TTL_S = 86_400


class RedisStreams:
    name = "Redis Streams"

    def __init__(self, url: str, *, prefix: str = "sb:", timeout_s: float = 2.0,
                 max_connections: int = 16, buffer: int = BUFFER) -> None:
        pool = BlockingConnectionPool.from_url(
            url, max_connections=max_connections, timeout=timeout_s * 5,
            socket_timeout=timeout_s, socket_connect_timeout=timeout_s,
            decode_responses=True)
        self._redis: Redis = Redis.from_pool(pool)
        self._reader: Redis = Redis.from_url(
            url, decode_responses=True, socket_timeout=BLOCK_MS / 1000 + timeout_s,
            socket_connect_timeout=timeout_s)
        self._p = prefix
        self._buffer = buffer
        self._publish = self._redis.register_script(_PUBLISH)
        self._listeners: dict[str, set[asyncio.Queue[Event]]] = {}
        self._cursors: dict[str, str] = {}
        self._task: asyncio.Task[None] | None = None
        self._last: dict[str, int] = {}
        """The highest number this process has seen per stream (for the fallback)."""
        self._local_seen: OrderedDict[str, None] = OrderedDict()
        self._local_turns: dict[str, dict[str, int]] = {}
        self.degraded = False

    def _down(self, what: str, exc: BaseException) -> None:
        if not self.degraded:
            log.error("Redis is unreachable for conversation streams (%s: %s); serving "
                      "this process's tabs only until it returns", what, exc)
            metrics.DEGRADED.labels("redis-streams").set(1)
        self.degraded = True

    def _up(self) -> None:
        if self.degraded:
            log.warning("conversation streams are in Redis again")
            metrics.DEGRADED.labels("redis-streams").set(0)
        self.degraded = False

    def _fanout(self, key: str, event: Event) -> None:
        self._last[key] = max(self._last.get(key, 0), int(event["seq"]))
        for queue in self._listeners.get(key, ()):
            queue.put_nowait(event)

    def _key(self, kind: str, tenant: str, subject: str) -> str:
        return f"{self._p}{kind}:{tenant}:{subject}"

    async def publish(self, tenant: str, subject: str, event: Mapping[str, Any]) -> Event:
        body = {k: v for k, v in event.items() if k != "seq"}
        key = self._key("ws", tenant, subject)
        try:
            seq = int(await self._publish(
                keys=[key, self._key("wsn", tenant, subject)],
                args=[json.dumps(body), self._buffer, int(IDLE_S * 1000),
                      self._last.get(key, 0)]))
        except _DOWN as exc:
            self._down("publish", exc)
            numbered = {**body, "seq": self._last.get(key, 0) + 1}
            self._fanout(key, numbered)
            return numbered
        self._up()
        self._last[key] = max(self._last.get(key, 0), seq)
        return {**body, "seq": seq}

    async def begin_turn(self, tenant: str, subject: str, client_id: str) -> None:
        key = self._key("wsf", tenant, subject)
        stream = self._key("ws", tenant, subject)
        self._local_turns.setdefault(stream, {}).setdefault(client_id,
                                                            self._last.get(stream, 0))
        try:
            before = int(await self._redis.get(self._key("wsn", tenant, subject)) or 0)
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.zadd(key, {client_id: before}, nx=True)
                pipe.expire(key, int(IDLE_S))
                await pipe.execute()
        except _DOWN as exc:
            self._down("begin a turn", exc)

    async def end_turn(self, tenant: str, subject: str, client_id: str) -> None:
        self._local_turns.get(self._key("ws", tenant, subject), {}).pop(client_id, None)
        try:
            await self._redis.zrem(self._key("wsf", tenant, subject), client_id)
        except _DOWN as exc:
            self._down("end a turn", exc)

    async def resume_point(self, tenant: str, subject: str) -> int:
        stream = self._key("ws", tenant, subject)
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.zrange(self._key("wsf", tenant, subject), 0, 0, withscores=True)
                pipe.get(self._key("wsn", tenant, subject))
                first, last = await pipe.execute()
        except _DOWN as exc:
            self._down("resume", exc)
            turns = self._local_turns.get(stream, {})
            return min(turns.values(), default=self._last.get(stream, 0))
        return int(first[0][1]) if first else int(last or 0)

    async def first_accept(self, tenant: str, subject: str, client_id: str) -> bool:
        key = self._key("wss", tenant, f"{subject}:{client_id}")
        if key in self._local_seen:  # accepted here while Redis was down
            return False
        try:
            return bool(await self._redis.set(key, "1", nx=True, ex=SEEN_TTL_S))
        except _DOWN as exc:
            self._down("check a resend", exc)
            self._local_seen[key] = None
            while len(self._local_seen) > 10_000:
                self._local_seen.popitem(last=False)
            return True

    async def follow(self, tenant: str, subject: str, after: int) -> AsyncIterator[Event]:
        key = self._key("ws", tenant, subject)
        queue: asyncio.Queue[Event] = asyncio.Queue()
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.xrange(key, "-", "+")
                pipe.get(self._key("wsn", tenant, subject))
                entries, counter = await pipe.execute()
        except _DOWN as exc:
            self._down("follow", exc)
            entries, counter = [], self._last.get(key, 0)
        kept = [_event(entry_id, fields) for entry_id, fields in entries]
        last = max(int(counter or 0), kept[-1]["seq"] if kept else 0)
        self._last[key] = max(self._last.get(key, 0), last)
        self._watch(key, queue, f"0-{last}")
        try:
            seen = max(after, last)
            for event in catch_up(kept, after, last):
                yield event
            while True:
                event = await queue.get()
                if event["seq"] > seen:
                    seen = event["seq"]
                    yield event
        finally:
            self._unwatch(key, queue)

    def _watch(self, key: str, queue: asyncio.Queue[Event], cursor: str) -> None:
        listeners = self._listeners.setdefault(key, set())
        if not listeners:
            self._cursors[key] = cursor
        listeners.add(queue)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._read())

    def _unwatch(self, key: str, queue: asyncio.Queue[Event]) -> None:
        listeners = self._listeners.get(key)
        if listeners is None:
            return
        listeners.discard(queue)
        if not listeners:
            del self._listeners[key]
            self._cursors.pop(key, None)

    async def _read(self) -> None:
        """Fan out new events of every followed stream to this process's followers."""
        failures = 0
        while self._listeners:
            cursors: dict[Any, Any] = dict(self._cursors)
            try:
                # RESP2 (redis-py's default): [[key, [(id, fields), …]], …]
                found = cast(list[Any], await self._reader.xread(cursors, count=200,
                                                                  block=BLOCK_MS))
                failures = 0
            except _DOWN as exc:
                failures += 1
                if failures == 1:
                    log.warning("reading conversation streams failed (%s); retrying", exc)
                await asyncio.sleep(min(2.0, 0.05 * 2 ** failures))
                continue
            for key, entries in found or []:
                entry_id: str
                fields: dict[str, str]
                for entry_id, fields in entries:
                    if key in self._cursors:
                        self._cursors[key] = entry_id
                    self._fanout(key, _event(entry_id, fields))

    async def ping(self) -> None:
        await self._redis.ping()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, RedisError):
                await self._task
        await self._reader.aclose()
        await self._redis.aclose()


def _event(entry_id: str, fields: Mapping[str, str]) -> Event:
    event: Event = json.loads(fields["e"])
    event["seq"] = int(entry_id.split("-", 1)[1])
    return event
