"""What an answer is grounded in: citations, a confidence, and follow-up suggestions."""

from __future__ import annotations

import re

from core.knowledge.base import Passage
from core.replies import Citation

_MARKER = re.compile(r"\[(\d{1,2})\]")


def cited(text: str, passages: list[Passage]) -> list[int]:
    """Passage numbers the answer cites, in order of first mention; all if it cites none."""
    numbers: list[int] = []
    for match in _MARKER.finditer(text):
        n = int(match.group(1))
        if 1 <= n <= len(passages) and n not in numbers:
            numbers.append(n)
    return numbers or list(range(1, len(passages) + 1))


def citations(text: str, passages: list[Passage]) -> tuple[Citation, ...]:
    out = []
    for n in cited(text, passages):
        p = passages[n - 1]
        title = " > ".join([p.title, *p.headings[-1:]]) if p.headings and \
            p.headings[-1] != p.title else p.title
        out.append(Citation(number=n, title=title or p.source, source=p.source, url=p.url,
                            snippet=" ".join(p.text.split())[:240], chunk_id=p.chunk_id))
    return tuple(out)


def confidence(passages: list[Passage], threshold: float) -> float:
    """0 with no passage; rises with the best passage's similarity above the threshold."""
    if not passages:
        return 0.0
    best = max(p.similarity for p in passages)
    span = max(0.75 - threshold, 1e-6)
    return round(min(1.0, max(0.05, (best - threshold) / span)), 2)


def follow_ups(question: str, passages: list[Passage], limit: int = 3) -> tuple[str, ...]:
    """Questions about neighbouring topics the retrieved passages cover."""
    seen = {question.lower()}
    out: list[str] = []
    for p in passages[1:] + passages[:1]:
        topic = p.headings[-1] if p.headings else p.title
        if not topic or len(topic) > 80:
            continue
        suggestion = f"Tell me more about {topic}"
        if suggestion.lower() not in seen:
            seen.add(suggestion.lower())
            out.append(suggestion)
        if len(out) == limit:
            break
    return tuple(out)
