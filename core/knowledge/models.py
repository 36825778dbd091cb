"""What knowledge is made of: extracted documents, sections, chunks, catalog records."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field
from datetime import datetime

_NAMESPACE = uuid.UUID("5b1f0c1e-7d8e-4d0a-9a53-2f0d6c4e8a11")


@dataclass(frozen=True, slots=True)
class Section:
    """A run of text under one heading path (and, for PDFs, on one page)."""

    text: str
    headings: tuple[str, ...] = ()
    page: int | None = None


@dataclass(frozen=True, slots=True)
class ExtractedDocument:
    title: str
    sections: tuple[Section, ...]

    @property
    def text(self) -> str:
        return "\n\n".join(s.text for s in self.sections)


@dataclass(frozen=True, slots=True)
class SourceDocument:
    """One document to ingest: where it came from and its raw content."""

    source: str
    """Stable identity: a path relative to the tenant's root, a URL, or ``inline:<name>``."""
    content: bytes
    content_type: str = ""
    url: str = ""
    origin: str = ""
    """The configured source (folder, URL list) this document was found through."""
    tags: tuple[str, ...] = ()
    title: str = ""


@dataclass(frozen=True, slots=True)
class Chunk:
    id: str
    doc_id: str
    position: int
    text: str
    embed_text: str
    content_hash: str
    headings: tuple[str, ...] = ()
    page: int | None = None


@dataclass(slots=True)
class DocumentRecord:
    tenant: str
    kb: str
    doc_id: str
    source: str
    title: str
    url: str
    signature: str
    chunk_ids: list[str]
    ingested_at: datetime
    origin: str = ""
    tags: list[str] = field(default_factory=list)


def document_id(tenant: str, kb: str, source: str) -> str:
    """The same source always gets the same id, so re-ingesting it replaces, never adds."""
    return str(uuid.uuid5(_NAMESPACE, f"{tenant}\x1f{kb}\x1f{source}"))


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def chunk_id(doc_id: str, position: int, digest: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"{doc_id}\x1f{position}\x1f{digest}"))
