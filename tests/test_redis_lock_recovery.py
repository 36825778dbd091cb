"""A Redis conversation lock whose holder died is taken over once its lease lapses."""

from __future__ import annotations

import asyncio
import uuid

from core.state.redis import RedisState
from tests.servers import ServerProcess


async def test_dead_holder_releases_after_lease(redis_server: ServerProcess) -> None:
    state = RedisState(redis_server.url, prefix=f"t{uuid.uuid4().hex[:8]}:")
    dead = RedisState(redis_server.url, prefix=state._p)
    try:
        holder = dead.conversation_lock("acme:slack:t9", 1, 0.5)
        await holder.__aenter__()
        for task in asyncio.all_tasks():
            if task.get_coro().__qualname__.endswith("_keep_lease"):  # type: ignore[union-attr]
                task.cancel()  # the holder "dies": no more renewals, never releases
        loop = asyncio.get_running_loop()
        started = loop.time()
        async with state.conversation_lock("acme:slack:t9", 5, 5):
            waited = loop.time() - started
        assert 0.3 < waited < 3.0
    finally:
        await state.close()
        await dead.close()
