"""Shared state in Redis: atomic Lua scripts, so several web workers agree.

Rate limits are token buckets evaluated on the server clock (no skew between workers).
Conversation locks are ticket locks: arrival order is the order of ``INCR`` on the
ticket counter, the holder keeps a renewed lease, and a ticket whose owner died is
skipped once its lease lapses. Every call has a socket timeout; errors surface as
``redis.RedisError`` for the engine to turn into an apology.

Connections come from a *blocking* pool of ``max_connections``: a turn that finds every
connection busy waits up to ``pool_timeout_s`` for one instead of failing (redis-py's
default pool raises ``MaxConnectionsError`` at 100 connections in flight, which lost
turns under load). Size it to what the Redis server allows per worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from core.state.base import Bucket, LockTimeout, RateDecision

log = logging.getLogger("switchboard.state")

_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local n = #KEYS
local levels = {}
for i = 1, n do
  local cap = tonumber(ARGV[i])
  local rate = cap / 60000.0
  local b = redis.call('HMGET', KEYS[i], 'tokens', 'ts')
  local tokens = tonumber(b[1]) or cap
  local ts = tonumber(b[2]) or now
  tokens = math.min(cap, tokens + math.max(0, now - ts) * rate)
  if tokens < 1 then
    return {0, i, tostring((1 - tokens) / rate / 1000.0)}
  end
  levels[i] = tokens
end
for i = 1, n do
  local cap = tonumber(ARGV[i])
  redis.call('HSET', KEYS[i], 'tokens', tostring(levels[i] - 1), 'ts', tostring(now))
  redis.call('PEXPIRE', KEYS[i], 61000)
end
return {1, 0, '0'}
"""

# Keys of a conversation lock: ticket counter, ticket being served, lease of the holder,
# tickets whose waiters gave up. A ticket is served in order; abandoned tickets are skipped.
_ADVANCE = """
local function advance(s)
  s = s + 1
  while redis.call('SREM', KEYS[4], s) == 1 do s = s + 1 end
  redis.call('SET', KEYS[2], s, 'PX', ARGV[4])
  local last = tonumber(redis.call('GET', KEYS[1]) or '0')
  if last >= s then
    redis.call('SET', KEYS[3], 'pickup', 'PX', ARGV[3])
  else
    redis.call('DEL', KEYS[3])
  end
  return s
end
"""

# ARGV: my ticket (0 = take one), lease ms, pickup ms, idle ms.
# Returns {ticket, state}: state 1 = acquired, 0 = wait, -1 = skipped (take a new ticket).
_ACQUIRE = _ADVANCE + """
local t = tonumber(ARGV[1])
if t == 0 then t = redis.call('INCR', KEYS[1]) end
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('PEXPIRE', KEYS[4], ARGV[4])
local s = tonumber(redis.call('GET', KEYS[2]) or '1')
if s < t and redis.call('EXISTS', KEYS[3]) == 0 then
  s = advance(s)
end
if s == t then
  redis.call('SET', KEYS[2], s, 'PX', ARGV[4])
  redis.call('SET', KEYS[3], t, 'PX', ARGV[2])
  return {t, 1}
end
if s > t then return {t, -1} end
return {t, 0}
"""

# ARGV: my ticket, (unused), pickup ms, idle ms. Releases, or abandons a ticket still waiting.
_RELEASE = _ADVANCE + """
local t = tonumber(ARGV[1])
local s = tonumber(redis.call('GET', KEYS[2]) or '0')
if s == t then
  advance(s)
  return 1
end
if s < t then
  redis.call('SADD', KEYS[4], t)
  redis.call('PEXPIRE', KEYS[4], ARGV[4])
end
return 0
"""

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

_IDLE_MS = 3_600_000
_PICKUP_MS = 3_000


class RedisState:
    name = "redis"
    degraded = False

    def __init__(self, url: str, *, prefix: str = "sb:", timeout_s: float = 2.0,
                 max_connections: int = 64, pool_timeout_s: float = 10.0) -> None:
        pool = BlockingConnectionPool.from_url(
            url, max_connections=max_connections, timeout=pool_timeout_s,
            socket_timeout=timeout_s, socket_connect_timeout=timeout_s,
            retry=Retry(ExponentialBackoff(cap=0.5, base=0.02), 2),
            retry_on_error=[RedisConnectionError, RedisTimeoutError],
            decode_responses=True, health_check_interval=30,
        )
        self._redis: Redis = Redis.from_pool(pool)
        self._p = prefix
        self._take = self._redis.register_script(_TAKE)
        self._acquire = self._redis.register_script(_ACQUIRE)
        self._release = self._redis.register_script(_RELEASE)
        self._renew = self._redis.register_script(_RENEW)

    async def take(self, buckets: list[Bucket]) -> RateDecision:
        result: list[Any] = await self._take(
            keys=[f"{self._p}rl:{b.key}" for b in buckets],
            args=[b.per_minute for b in buckets],
        )
        allowed, index, wait = int(result[0]), int(result[1]), float(result[2])
        if allowed:
            return RateDecision(True)
        return RateDecision(False, round(wait, 3), buckets[index - 1].scope)

    async def first_seen(self, key: str, ttl_s: int) -> bool:
        return bool(await self._redis.set(f"{self._p}dd:{key}", 1, nx=True, ex=ttl_s))

    def conversation_lock(self, key: str, wait_s: float,
                          lease_s: float) -> AbstractAsyncContextManager[None]:
        return self._hold(key, wait_s, lease_s)

    @asynccontextmanager
    async def _hold(self, key: str, wait_s: float, lease_s: float) -> AsyncIterator[None]:
        base = f"{self._p}lk:{key}"
        keys = [f"{base}:ticket", f"{base}:serving", f"{base}:lease", f"{base}:gave_up"]
        lease_ms = int(lease_s * 1000)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        ticket, delay = 0, 0.002
        while True:
            ticket, state = (int(x) for x in await self._acquire(
                keys=keys, args=[ticket, lease_ms, _PICKUP_MS, _IDLE_MS]))
            if state == 1:
                break
            if state == -1:
                ticket = 0
            if loop.time() >= deadline:
                await self._release(keys=keys, args=[ticket, 0, _PICKUP_MS, _IDLE_MS])
                raise LockTimeout(key)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.025)
        renewer = asyncio.create_task(self._keep_lease(keys[2], ticket, lease_ms))
        try:
            yield
        finally:
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewer
            try:
                await self._release(keys=keys, args=[ticket, 0, _PICKUP_MS, _IDLE_MS])
            except Exception as exc:
                log.warning("could not release conversation lock; its lease will lapse "
                            "(%s: %s)", type(exc).__name__, exc)

    async def _keep_lease(self, lease_key: str, ticket: int, lease_ms: int) -> None:
        while True:
            await asyncio.sleep(lease_ms / 3000)
            try:
                await self._renew(keys=[lease_key], args=[str(ticket), lease_ms])
            except Exception as exc:
                log.warning("could not renew conversation lock lease (%s: %s)",
                            type(exc).__name__, exc)

    async def add(self, key: str, amount: int, ttl_s: int) -> int:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.incrby(f"{self._p}ct:{key}", amount)
            pipe.expire(f"{self._p}ct:{key}", ttl_s)
            value, _ = await pipe.execute()
        return int(value)

    async def get_int(self, key: str) -> int | None:
        value = await self._redis.get(f"{self._p}ct:{key}")
        return None if value is None else int(value)

    async def set_int_if_absent(self, key: str, value: int, ttl_s: int) -> bool:
        return bool(await self._redis.set(f"{self._p}ct:{key}", value, nx=True, ex=ttl_s))

    async def cache_get(self, key: str) -> str | None:
        value = await self._redis.get(f"{self._p}ca:{key}")
        return None if value is None else str(value)

    async def cache_set(self, key: str, value: str, ttl_s: int) -> None:
        await self._redis.set(f"{self._p}ca:{key}", value, ex=ttl_s)

    async def cache_delete(self, *keys: str) -> None:
        if keys:
            await self._redis.delete(*(f"{self._p}ca:{k}" for k in keys))

    async def ping(self) -> None:
        await self._redis.ping()

    async def close(self) -> None:
        await self._redis.aclose()
