"""Expanding what an admin names (files, folders, URLs, URL lists) into documents.

Expansion is lazy and never stops at the first bad item: each item either yields a
:class:`SourceDocument` or a :class:`SourceFailure` with a reason, so one unreadable file
does not stop a folder from ingesting. Local paths are read off the event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from core.knowledge.extract import MAX_BYTES
from core.knowledge.fetch import FetchError, fetch
from core.knowledge.models import SourceDocument

SUPPORTED = {".txt", ".text", ".md", ".markdown", ".rst", ".html", ".htm", ".pdf", ".docx"}
URL_LIST_SUFFIXES = {".urls", ".urllist"}


@dataclass(frozen=True, slots=True)
class SourceFailure:
    source: str
    reason: str


def is_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))


def source_name(path: Path, root: Path) -> str:
    """The stable name of a local file: relative to the tenant's root when inside it."""
    resolved = path.resolve()
    try:
        return resolved.relative_to(root.resolve()).as_posix()
    except ValueError:
        return resolved.as_posix()


def _walk(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*")
                  if p.is_file() and not any(part.startswith(".") for part in
                                             p.relative_to(folder).parts)
                  and p.suffix.lower() in SUPPORTED)


def _read(path: Path, max_bytes: int) -> bytes:
    size = path.stat().st_size
    if size > max_bytes:
        raise ValueError(f"{size / 1e6:.1f} MB is over the {max_bytes / 1e6:.0f} MB limit")
    return path.read_bytes()


async def _from_url(url: str, origin: str, tags: tuple[str, ...], allow_private: bool,
                    max_bytes: int) -> SourceDocument | SourceFailure:
    try:
        fetched = await fetch(url, allow_private=allow_private, max_bytes=max_bytes)
    except FetchError as exc:
        return SourceFailure(url, str(exc))
    return SourceDocument(source=url, content=fetched.content,
                          content_type=fetched.content_type, url=fetched.url,
                          origin=origin, tags=tags)


async def expand(sources: list[str], root: Path, *, tags: tuple[str, ...] = (),
                 allow_private: bool = False, max_bytes: int = MAX_BYTES
                 ) -> AsyncIterator[SourceDocument | SourceFailure]:
    for source in sources:
        if is_url(source):
            yield await _from_url(source, source, tags, allow_private, max_bytes)
            continue
        path = Path(source) if Path(source).is_absolute() else root / source
        if not path.exists():
            yield SourceFailure(source, "no such file or folder")
            continue
        origin = source_name(path, root)
        if path.suffix.lower() in URL_LIST_SUFFIXES:
            text = await asyncio.to_thread(path.read_text, "utf-8", "replace")
            for line in text.splitlines():
                url = line.strip()
                if url and not url.startswith("#"):
                    yield await _from_url(url, origin, tags, allow_private, max_bytes)
            continue
        files = await asyncio.to_thread(_walk, path) if path.is_dir() else [path]
        for file in files:
            name = source_name(file, root)
            try:
                content = await asyncio.to_thread(_read, file, max_bytes)
            except (OSError, ValueError) as exc:
                yield SourceFailure(name, str(exc))
                continue
            yield SourceDocument(source=name, content=content, origin=origin, tags=tags)
