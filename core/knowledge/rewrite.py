"""Query rewriting: resolve a follow-up against the conversation before retrieving.

"and the second one?" retrieves nothing useful on its own; joined with the question it
follows, it does. A message is treated as a follow-up when it is short or leans on
something said before (pronouns, ordinals, "what about", a leading "and").
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from core.knowledge.base import HistoryTurn

_LEANING = re.compile(
    r"^(and|or|but|also|so|then|what about|how about|why|how come)\b|"
    r"\b(it|its|that|this|those|these|they|them|their|one|ones|first|second|third|last|"
    r"former|latter|above|previous|same|more|else|again)\b", re.IGNORECASE)
SHORT_WORDS = 5


def is_follow_up(question: str) -> bool:
    words = question.split()
    return len(words) <= SHORT_WORDS or bool(_LEANING.search(question))


def rewrite_query(question: str, history: Sequence[HistoryTurn]) -> str:
    previous = next((text for role, text in reversed(history) if role == "user" and text), "")
    if not previous or not is_follow_up(question):
        return question
    return f"{previous} {question}"
