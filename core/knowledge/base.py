"""The retrieval interface the engine asks for passages to answer from.

Every call is scoped to one tenant; an implementation must never return another
tenant's chunks, whatever the query or filter.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from core.tenants.models import TenantConfig

HistoryTurn = tuple[str, str]
"""(role, text) of an earlier message in the thread, oldest first."""


@dataclass(frozen=True, slots=True)
class Passage:
    text: str
    title: str
    source: str
    url: str = ""
    score: float = 0.0
    similarity: float = 0.0
    """Cosine similarity of the passage to the query (what the score threshold applies to)."""
    chunk_id: str = ""
    doc_id: str = ""
    headings: tuple[str, ...] = ()
    page: int | None = None
    tags: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SearchFilters:
    sources: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()


class Retriever(Protocol):
    async def has_knowledge(self, tenant: TenantConfig) -> bool: ...

    async def search(self, tenant: TenantConfig, query: str,
                     history: Sequence[HistoryTurn] = (),
                     filters: SearchFilters | None = None, *,
                     top_k: int | None = None) -> list[Passage]: ...

    async def ping(self) -> None: ...


class NoKnowledge:
    """The retriever before any knowledge store is configured: nothing is loaded."""

    async def has_knowledge(self, tenant: TenantConfig) -> bool:
        return False

    async def search(self, tenant: TenantConfig, query: str,
                     history: Sequence[HistoryTurn] = (),
                     filters: SearchFilters | None = None, *,
                     top_k: int | None = None) -> list[Passage]:
        return []

    async def ping(self) -> None:
        return None
