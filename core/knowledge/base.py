"""The retrieval interface the engine asks for passages to answer from.

Every call is scoped to one tenant; an implementation must never return another
tenant's chunks, whatever the query or filter.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from core.tenants.models import TenantConfig


@dataclass(frozen=True, slots=True)
class Passage:
    text: str
    title: str
    source: str
    url: str = ""
    score: float = 0.0
    chunk_id: str = ""


class Retriever(Protocol):
    async def has_knowledge(self, tenant: TenantConfig) -> bool: ...

    async def search(self, tenant: TenantConfig, query: str) -> list[Passage]: ...

    async def ping(self) -> None: ...


class NoKnowledge:
    """The retriever before any knowledge store is configured: nothing is loaded."""

    async def has_knowledge(self, tenant: TenantConfig) -> bool:
        return False

    async def search(self, tenant: TenantConfig, query: str) -> list[Passage]:
        return []

    async def ping(self) -> None:
        return None
