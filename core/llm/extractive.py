"""The offline answerer: no language model, only the tenant's own passages.

It is honest about what it is. With no knowledge loaded it says so; with passages it
quotes the most relevant sentences and cites them; with nothing relevant it says it
found no source instead of guessing. It streams sentence by sentence like a model would.
"""

from __future__ import annotations

import re

from core.llm.base import Answer, AnswerRequest, DeltaCallback
from core.sessions.models import TurnUsage

NO_KNOWLEDGE = (
    "No knowledge has been loaded for this workspace yet, and no language model is "
    "configured, so I can only run commands for now. Type `/help` to see them."
)
NO_SOURCE = (
    "I found no source for that in this workspace's knowledge base, so I won't guess. "
    "Try rephrasing, or ask an admin to add documents about it."
)
PREFACE = "Here is what the documentation says (quoted, no language model is configured):\n\n"

_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9`*\[(])")
_WORD = re.compile(r"[a-z0-9]{3,}")


def _best_sentences(text: str, query_terms: set[str], limit: int) -> list[str]:
    sentences = [s.strip() for s in _SENTENCE.split(" ".join(text.split()))
                 if s.strip() and s.count("|") < 4]
    ranked = sorted(range(len(sentences)),
                    key=lambda i: -len(query_terms & set(_WORD.findall(sentences[i].lower()))))
    return [sentences[i] for i in sorted(ranked[:limit])]


def _shorten(quote: str, limit: int = 360) -> str:
    if len(quote) <= limit:
        return quote
    cut = quote[:limit]
    end = max(cut.rfind(". "), cut.rfind("; "))
    return (cut[:end + 1] if end > limit // 2 else cut.rsplit(" ", 1)[0]) + " …"


class ExtractiveAnswerer:
    name = "offline extractive answerer"
    metered = False
    supports_tools = False

    async def answer(self, request: AnswerRequest, on_delta: DeltaCallback) -> Answer:
        if not request.knowledge_loaded:
            text = NO_KNOWLEDGE
        elif not request.passages:
            text = NO_SOURCE
        else:
            terms = set(_WORD.findall(request.question.lower()))
            parts = []
            for number, passage in enumerate(request.passages[:3], start=1):
                quote = _shorten(" ".join(_best_sentences(passage.text, terms, 2)))
                parts.append(f"> {quote} [{number}]")
            text = PREFACE + "\n\n".join(parts)
        for piece in re.split(r"(?<=\n\n)", text):
            await on_delta(piece)
        return Answer(text, TurnUsage(model="extractive"))

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        return None
