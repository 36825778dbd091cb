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


def source_name(path: Path, root: Path, given: Path | None = None) -> str:
    """The stable name of a local file: relative to the tenant's root when inside it;
    otherwise relative to the folder the source was given in (a file given alone is
    its name), so a server's own paths are never shown to the people it answers."""
    resolved = path.resolve()
    try:
        return resolved.relative_to(root.resolve()).as_posix()
    except ValueError:
        base = (given or path).resolve().parent
        try:
            return resolved.relative_to(base).as_posix()
        except ValueError:
            return resolved.name


def _link(url_base: str, name: str, origin: str, is_folder: bool) -> str:
    """A file's web address under its source's ``url_base``: the base plus the file's
    path inside the configured folder (or the base itself for a single file)."""
    if not url_base:
        return ""
    if not is_folder:
        return url_base
    inside = name[len(origin):].lstrip("/") if name.startswith(origin) else name
    return url_base.rstrip("/") + "/" + inside


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
                 allow_private: bool = False, max_bytes: int = MAX_BYTES,
                 url_bases: dict[str, str] | None = None
                 ) -> AsyncIterator[SourceDocument | SourceFailure]:
    """Every document the sources hold. ``url_bases``: a web address for the files under
    a configured source (by its name, e.g. ``docs/``), such as a repository's web view."""
    bases = {source_name(root / k, root): v for k, v in (url_bases or {}).items()}
    for source in sources:
        if is_url(source):
            yield await _from_url(source, source, tags, allow_private, max_bytes)
            continue
        path = Path(source) if Path(source).is_absolute() else root / source
        if not path.exists():
            yield SourceFailure(source, "no such file or folder")
            continue
        origin = source_name(path, root, path)
        if path.suffix.lower() in URL_LIST_SUFFIXES:
            text = await asyncio.to_thread(path.read_text, "utf-8", "replace")
            for line in text.splitlines():
                url = line.strip()
                if url and not url.startswith("#"):
                    yield await _from_url(url, origin, tags, allow_private, max_bytes)
            continue
        files = await asyncio.to_thread(_walk, path) if path.is_dir() else [path]
        for file in files:
            name = source_name(file, root, path)
            try:
                content = await asyncio.to_thread(_read, file, max_bytes)
            except (OSError, ValueError) as exc:
                yield SourceFailure(name, str(exc))
                continue
            yield SourceDocument(source=name, content=content, origin=origin, tags=tags,
                                 url=_link(bases.get(origin, ""), name, origin,
                                           path.is_dir()))
