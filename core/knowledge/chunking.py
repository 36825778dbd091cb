"""Chunking that follows structure: sections, then paragraphs, then sentences.

A chunk never spans two sections (so its heading path is true for all of it) and holds
at most ``max_tokens`` tokens as the embedder counts them. Consecutive chunks of a
section share about ``overlap`` tokens of whole sentences. The text that is embedded is
prefixed with the document title and heading path, which helps retrieval; the stored
text is the chunk alone.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from core.knowledge.models import Chunk, ExtractedDocument, chunk_id, content_hash

_PARAGRAPHS = re.compile(r"\n\s*\n")
_SENTENCES = re.compile(r"(?<=[^\s\d][.!?])\s+(?=\S)")
_FENCE = re.compile(r"^\s*(```|~~~)")
_LIST_ITEM = re.compile(r"\n(?=\s*(?:[-*•]|\d+[.)])\s)")

TokenCounter = Callable[[str], int]


def _pieces(text: str, max_tokens: int, count: TokenCounter) -> list[tuple[str, int]]:
    """Paragraphs, or sentences/word runs for paragraphs too long on their own."""
    out: list[tuple[str, int]] = []
    for paragraph in _PARAGRAPHS.split(text):
        paragraph = paragraph.strip()
        if not paragraph:
            continue
        size = count(paragraph)
        if size <= max_tokens:
            out.append((paragraph, size))
            continue
        lines = paragraph.splitlines()
        if len(lines) > 1 and (_FENCE.match(lines[0]) or sum(
                line.lstrip().startswith("|") for line in lines) * 2 >= len(lines)):
            # A table or a code block: split between rows and lines, never inside one
            # (sentence splitting would join them into one line of cells).
            units = lines
        else:
            units = [u for item in _LIST_ITEM.split(paragraph) for u in _SENTENCES.split(item)]
        for sentence in units:
            size = count(sentence)
            if size <= max_tokens:
                out.append((sentence, size))
                continue
            out += _word_runs(sentence.split(), max_tokens, count, size)
    return out


def _word_runs(words: list[str], max_tokens: int, count: TokenCounter, size: int
               ) -> list[tuple[str, int]]:
    """Runs of whole words, each within ``max_tokens`` (estimated, then checked)."""
    out: list[tuple[str, int]] = []
    step = max(1, len(words) * max_tokens // max(size, 1))
    start = 0
    while start < len(words):
        end = min(len(words), start + step)
        piece = " ".join(words[start:end])
        n = count(piece)
        while n > max_tokens and end - start > 1:
            end = start + max(1, (end - start) * max_tokens // n - 1)
            piece = " ".join(words[start:end])
            n = count(piece)
        out.append((piece, n))
        start = end
    return out


def _tail(pieces: list[tuple[str, int]], budget: int) -> list[tuple[str, int]]:
    kept: list[tuple[str, int]] = []
    spent = 0
    for piece in reversed(pieces):
        if spent + piece[1] > budget:
            break
        kept.insert(0, piece)
        spent += piece[1]
    return kept


def _make_chunk(doc_id: str, position: int, prefix: str, pieces: list[tuple[str, int]],
                headings: tuple[str, ...], page: int | None) -> Chunk:
    text = "\n\n".join(p for p, _ in pieces)
    digest = content_hash(f"{prefix}\n{text}")
    return Chunk(id=chunk_id(doc_id, position, digest), doc_id=doc_id, position=position,
                 text=text, embed_text=f"{prefix}\n{text}", content_hash=digest,
                 headings=headings, page=page)


def chunk_document(doc_id: str, document: ExtractedDocument, max_tokens: int, overlap: int,
                   count: TokenCounter) -> list[Chunk]:
    chunks: list[Chunk] = []
    for section in document.sections:
        prefix = " > ".join([document.title, *section.headings])
        current: list[tuple[str, int]] = []
        size = 0
        for piece in _pieces(section.text, max_tokens, count):
            if current and size + piece[1] > max_tokens:
                chunks.append(_make_chunk(doc_id, len(chunks), prefix, current,
                                          section.headings, section.page))
                current = _tail(current, overlap) if overlap else []
                size = sum(n for _, n in current)
                if size + piece[1] > max_tokens:
                    current, size = [], 0
            current.append(piece)
            size += piece[1]
        if current:
            chunks.append(_make_chunk(doc_id, len(chunks), prefix, current, section.headings,
                                      section.page))
    return chunks
