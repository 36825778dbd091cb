"""The offline answerer: no language model, only the tenant's own passages.

It is honest about what it is. With no knowledge loaded it says so; with nothing
relevant it says it found no source instead of guessing. Otherwise it answers with the
two to five sentences (one, when no second is about the question too) of the top
passages that best match the question — by the question's embedding and by the words
they share — in clean Markdown, each group of sentences followed by the number of the
passage it comes from, then one line saying no language model wrote it.

Passages are chunks, and a chunk can begin or end inside a code block or a table. Only
whole statements are quoted: prose sentences that start and end as sentences, with
balanced inline code and emphasis, and whole table rows read as a statement. Code
blocks, partial rows, headings and fragments are never quoted.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from core.knowledge.base import Passage
from core.llm.base import Answer, AnswerRequest, DeltaCallback
from core.sessions.models import TurnUsage

log = logging.getLogger("switchboard.llm")

NO_KNOWLEDGE = (
    "No knowledge has been loaded for this workspace yet, and no language model is "
    "configured, so I can only run commands for now. Type `/help` to see them."
)
NO_SOURCE = (
    "I found no source for that in this workspace's knowledge base, so I won't guess. "
    "Try rephrasing, or ask an admin to add documents about it."
)
FOOTNOTE = "*Quoted from the sources below: no language model is configured here.*"

MAX_SENTENCES = 5
MIN_SENTENCES = 2
MAX_PASSAGES = 4

_FENCE = re.compile(r"^\s*(```|~~~)")
_HEADING = re.compile(r"^\s{0,3}#{1,6}\s")
_BULLET = re.compile(r"^\s*(?:[-*+•]|\d+[.)])\s+")
_TABLE_SEPARATOR = re.compile(r"^\s*\|?\s*:?-{2,}")
_SENTENCE_SPLIT = re.compile(r"(?<=[.!?])[)\"'*]*\s+(?=[A-Z0-9`*(\[\"])")
_CODE_SPAN = re.compile(r"`[^`]*`")
_LINK = re.compile(r"\[([^\]]+)\]\(([^)\s]+)\)")
_WORD = re.compile(r"[a-z0-9][a-z0-9_-]{2,}")
_STOP = frozenset({
    "the", "and", "for", "are", "but", "not", "you", "all", "any", "can", "has", "had",
    "her", "was", "one", "our", "out", "his", "how", "its", "who", "why", "what", "when",
    "where", "which", "does", "did", "this", "that", "with", "from", "have", "there",
    "their", "about", "into", "your", "they", "them", "then", "than", "will", "would",
    "should", "could", "more", "tell", "much", "many", "some", "also", "just", "each",
    "work", "works", "used", "use", "way", "get", "gets"})


class SentenceEmbedder(Protocol):
    """What ranking by meaning needs of an embedder (the knowledge layer's fits)."""

    async def embed_documents(self, texts: list[str]) -> Any: ...

    async def embed_query(self, text: str) -> Any: ...


def terms(text: str) -> set[str]:
    """Content words, lower-cased, a plural ``s`` dropped: what overlap is counted on."""
    return {w[:-1] if w.endswith("s") and len(w) > 4 else w
            for w in _WORD.findall(text.lower())} - _STOP


@dataclass(frozen=True, slots=True)
class Candidate:
    text: str
    passage: int
    """The passage's index in the request (its citation number minus one)."""
    position: int


def _prose_lines(text: str) -> list[str]:
    """The chunk's lines outside code blocks. A chunk can start inside a block (its first
    fence closes one): of the two readings, the one whose prose looks more like prose
    wins."""
    lines = text.splitlines()

    def split(start_inside: bool) -> tuple[list[str], int]:
        inside, prose, sentences = start_inside, [], 0
        for line in lines:
            if _FENCE.match(line):
                inside = not inside
                continue
            if not inside:
                prose.append(line)
                sentences += line.rstrip().endswith((".", "!", "?"))
            else:
                sentences -= line.rstrip().endswith((".", "!", "?"))
        return prose, sentences

    fences = sum(1 for line in lines if _FENCE.match(line))
    outside, outside_score = split(False)
    if fences % 2 == 0:
        return outside
    inside, inside_score = split(True)
    return inside if inside_score > outside_score else outside


def _row_statement(line: str) -> str:
    """A whole table row read as a statement: ``first cell: the others; …``."""
    cells = [c.strip() for c in line.strip().strip("|").split("|")]
    cells = [c for c in cells if c]
    if len(cells) < 2 or len(" ".join(cells[1:]).split()) < 4:
        return ""
    statement = f"{cells[0]}: {'; '.join(cells[1:])}"
    return statement if statement.endswith((".", "!", "?")) else statement + "."


def _units(text: str) -> list[str]:
    """Sentences and table rows of a chunk, in order, before they are checked."""
    units: list[str] = []
    paragraph: list[str] = []
    lines = _prose_lines(text)

    def flush() -> None:
        if paragraph:
            units.extend(_SENTENCE_SPLIT.split(" ".join(paragraph)))
            paragraph.clear()

    for n, line in enumerate(lines):
        stripped = line.strip()
        if not stripped or _HEADING.match(line):
            flush()
            continue
        if stripped.count("|") >= 2:
            flush()
            after = lines[n + 1] if n + 1 < len(lines) else ""
            header = bool(_TABLE_SEPARATOR.match(after))
            if (stripped.startswith("|") and stripped.endswith("|") and not header
                    and not _TABLE_SEPARATOR.match(stripped)):
                units.append(_row_statement(stripped))
            continue
        if _BULLET.match(line):
            flush()
            paragraph.append(_BULLET.sub("", line, count=1).strip())
            continue
        paragraph.append(stripped)
    flush()
    return [u.strip() for u in units if u.strip()]


def _links_as_text(sentence: str) -> str:
    """Markdown links kept only when absolute (a relative link means nothing in chat)."""
    return _LINK.sub(lambda m: m.group(0) if m.group(2).startswith(("http://", "https://"))
                     else m.group(1), sentence)


def whole(sentence: str) -> bool:
    """A statement that can be quoted alone: it starts and ends like a sentence, its
    inline code and emphasis are balanced, and it is not code or a fragment."""
    if not 6 <= len(sentence.split()) <= 70 or len(sentence) > 480:
        return False
    if sentence.count("`") % 2 or sentence.count("**") % 2 or "```" in sentence:
        return False
    if not re.match(r"[A-Z0-9`*(\"]", sentence):
        return False
    if not re.search(r"[.!?][)\"'*]*$", sentence):
        return False
    outside_code = _CODE_SPAN.sub("", sentence)
    if re.search(r"\s=\s|[{}\\|]", outside_code):  # an assignment, braces: configuration
        return False
    words = outside_code.split()
    return bool(words) and sum(w[:1].isalpha() for w in words) / len(words) >= 0.6


def candidates(passages: Sequence[Passage]) -> list[Candidate]:
    seen: set[str] = set()
    out: list[Candidate] = []
    for index, passage in enumerate(passages[:MAX_PASSAGES]):
        for position, unit in enumerate(_units(passage.text)):
            sentence = _links_as_text(" ".join(unit.split()))
            key = sentence.lower()
            if key in seen or not whole(sentence):
                continue
            seen.add(key)
            out.append(Candidate(sentence, index, position))
    return out


def choose(scored: list[tuple[float, Candidate]]) -> list[Candidate]:
    """The best two to five, in reading order: by passage, then by place in it."""
    ranked = sorted(scored, key=lambda pair: -pair[0])
    if not ranked:
        return []
    best = ranked[0][0]
    chosen = [c for s, c in ranked[:MAX_SENTENCES] if s >= 0.55 * best]
    if len(chosen) < MIN_SENTENCES:
        # A second sentence only when it is about the question too: one good sentence
        # reads better than one padded with an unrelated one.
        chosen = [c for s, c in ranked[:MIN_SENTENCES] if s >= 0.45 * best]
    return sorted(chosen, key=lambda c: (c.passage, c.position))


def compose(chosen: list[Candidate]) -> str:
    """One paragraph; each run of sentences from one passage ends with its number."""
    parts: list[str] = []
    for n, candidate in enumerate(chosen):
        parts.append(candidate.text)
        following = chosen[n + 1] if n + 1 < len(chosen) else None
        if following is None or following.passage != candidate.passage:
            parts[-1] += f" [{candidate.passage + 1}]"
    return " ".join(parts)


class ExtractiveAnswerer:
    name = "offline extractive answerer"
    metered = False
    supports_tools = False

    def __init__(self, embedder: SentenceEmbedder | None = None) -> None:
        """``embedder`` ranks sentences by meaning as well as by shared words; without
        one (or when it fails), shared words alone decide."""
        self._embedder = embedder

    async def _similarities(self, question: str, texts: list[str]) -> np.ndarray:
        if self._embedder is None or not texts:
            return np.zeros(len(texts))
        try:
            query = np.asarray(await self._embedder.embed_query(question), dtype=np.float32)
            vectors = np.asarray(await self._embedder.embed_documents(texts), dtype=np.float32)
        except Exception as exc:  # ranking by shared words alone still gives an answer
            log.warning("sentences ranked by words only: the embedder failed (%s)",
                        type(exc).__name__)
            return np.zeros(len(texts))
        norms = np.linalg.norm(vectors, axis=1) * max(float(np.linalg.norm(query)), 1e-9)
        result: np.ndarray = vectors @ query / np.maximum(norms, 1e-9)
        return result

    async def answer(self, request: AnswerRequest, on_delta: DeltaCallback) -> Answer:
        if not request.knowledge_loaded:
            text = NO_KNOWLEDGE
        elif not request.passages:
            text = NO_SOURCE
        else:
            text = await self._quote(request.question, request.passages)
        for piece in re.split(r"(?<=[.!?\]]\s)", text):  # sentence by sentence, like a model
            if piece:
                await on_delta(piece)
        return Answer(text, TurnUsage(model="extractive"))

    async def _quote(self, question: str, passages: Sequence[Passage]) -> str:
        found = candidates(passages)
        if not found:
            return NO_SOURCE
        asked = terms(question)
        similarity = await self._similarities(question, [c.text for c in found])
        scored = []
        for candidate, cosine in zip(found, similarity, strict=True):
            shared = len(asked & terms(candidate.text)) / max(1, len(asked))
            rank = 1.0 / (1 + candidate.passage)
            scored.append((0.55 * float(cosine) + 0.35 * shared + 0.1 * rank, candidate))
        return compose(choose(scored)) + "\n\n" + FOOTNOTE

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        return None
