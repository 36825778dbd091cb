"""Entities and intent from text, deterministically, for the model's tools.

``extract_entities`` finds what has a recognisable shape: e-mail addresses, URLs, dates,
money amounts, percentages, numbers, @mentions and capitalised names. ``classify_intent``
scores a message against cue words for each intent. Neither needs a model, so both work
on the offline defaults and cost no tokens; the model decides what to do with them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_PATTERNS: dict[str, re.Pattern[str]] = {
    "email": re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b"),
    "url": re.compile(r"\bhttps?://[^\s<>()\"']+"),
    "date": re.compile(
        r"\b(?:\d{4}-\d{2}-\d{2}|\d{1,2}/\d{1,2}/\d{2,4}|"
        r"\d{1,2} (?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)[a-z]* \d{4}|"
        r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)[a-z]* \d{1,2},? \d{4})\b"),
    "money": re.compile(r"(?:[$€£]\s?\d[\d,]*(?:\.\d+)?|\b\d[\d,]*(?:\.\d+)?\s?(?:USD|EUR|GBP)\b)"),
    "percent": re.compile(r"\b\d+(?:\.\d+)?\s?%"),
    "mention": re.compile(r"(?<![\w@])@[A-Za-z][\w.-]{1,30}"),
}
_NAME = re.compile(r"\b(?:[A-Z][a-z]+(?:\s+[A-Z][a-z]+)+|[A-Z]{2,}[a-z]*)\b")
_NUMBER = re.compile(r"(?<![\w.])\d+(?:[.,]\d+)?(?![\w%])")
MAX_PER_KIND = 20


def extract_entities(text: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    taken: list[tuple[int, int]] = []
    for kind, pattern in _PATTERNS.items():
        for match in pattern.finditer(text):
            _add(found, kind, match.group(0).rstrip(".,;:"))
            taken.append(match.span())
    for match in _NUMBER.finditer(text):
        if not _inside(match.span(), taken):
            _add(found, "number", match.group(0))
    for match in _NAME.finditer(text):
        if not _inside(match.span(), taken):
            _add(found, "name", match.group(0))
    return found


def _add(found: dict[str, list[str]], kind: str, value: str) -> None:
    values = found.setdefault(kind, [])
    if value not in values and len(values) < MAX_PER_KIND:
        values.append(value)


def _inside(span: tuple[int, int], taken: Iterable[tuple[int, int]]) -> bool:
    return any(start <= span[0] and span[1] <= end for start, end in taken)


INTENTS: dict[str, tuple[str, ...]] = {
    "question": ("how", "what", "why", "when", "where", "which", "who", "can i", "is there",
                 "does", "do you", "?"),
    "request": ("please", "could you", "can you", "i need", "i want", "send me", "set up",
                "create", "add", "change", "reset"),
    "complaint": ("broken", "not working", "doesn't work", "does not work", "error",
                  "angry", "terrible", "unacceptable", "refund", "still waiting", "bug"),
    "greeting": ("hello", "hi ", "hey", "good morning", "good afternoon", "thanks",
                 "thank you"),
    "feedback": ("great", "love", "helpful", "suggestion", "would be nice", "feature"),
}


def classify_intent(text: str) -> tuple[str, float, dict[str, int]]:
    """The best intent, a confidence (its share of cue hits) and every intent's hits."""
    lowered = f" {text.lower().strip()} "
    scores = {intent: sum(lowered.count(cue) for cue in cues)
              for intent, cues in INTENTS.items()}
    total = sum(scores.values())
    if total == 0:
        return "other", 0.0, scores
    best = max(scores, key=lambda k: scores[k])
    return best, round(scores[best] / total, 2), scores
