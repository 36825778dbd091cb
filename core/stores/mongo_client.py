"""The one MongoDB connection of a process, with bounded timeouts and retries.

Every operation has a deadline (server selection, connect, socket), and reads and writes
are retried once by the driver on a transient network error. Errors surface as
``pymongo.errors.PyMongoError`` for the engine to turn into an apology.
"""

from __future__ import annotations

from typing import Any

from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

Document = dict[str, Any]


class MongoConnection:
    def __init__(self, uri: str, *, database: str | None = None, timeout_ms: int = 5000,
                 max_pool_size: int = 32) -> None:
        self.client: AsyncMongoClient[Document] = AsyncMongoClient(
            uri,
            tz_aware=True,
            serverSelectionTimeoutMS=timeout_ms,
            connectTimeoutMS=timeout_ms,
            socketTimeoutMS=2 * timeout_ms,
            maxPoolSize=max_pool_size,
            retryReads=True,
            appname="switchboard",
        )
        name = database or self.client.get_default_database(default="switchboard").name
        self.db: AsyncDatabase[Document] = self.client[name]

    async def ping(self) -> None:
        await self.db.command("ping")

    async def close(self) -> None:
        await self.client.close()
