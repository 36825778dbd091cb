"""BM25-style sparse vectors for Qdrant's sparse index.

A document chunk becomes {term id: BM25 term-frequency weight}; Qdrant multiplies by the
inverse document frequency it keeps per collection (``Modifier.IDF``), so the score of a
query is BM25 over the tenant's own chunks. Terms are lower-cased words, stop words
dropped, Snowball-stemmed, and hashed to 31-bit ids (collisions are rare and harmless).
"""

from __future__ import annotations

import re
import zlib
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache

import Stemmer

_WORD = re.compile(r"[^\W_]+(?:['\u2019][^\W_]+)?", re.UNICODE)
_STOP_WORDS = """
a about above after again against all am an and any are as at be because been before
being below between both but by can could did do does doing down during each few for from
further had has have having he her here hers herself him himself his how i if in into is it
its itself just me more most my myself no nor not now of off on once only or other our ours
ourselves out over own same she should so some such than that the their theirs them
themselves then there these they this those through to too under until up very was we were
what when where which while who whom why will with would you your yours yourself yourselves
"""
_STOP = frozenset(_STOP_WORDS.split())

K1 = 1.2
B = 0.75


@dataclass(frozen=True, slots=True)
class SparseVector:
    indices: list[int]
    values: list[float]


@lru_cache(maxsize=1)
def _stemmer() -> Stemmer.Stemmer:
    return Stemmer.Stemmer("english")


def terms(text: str) -> list[str]:
    words = [w.lower() for w in _WORD.findall(text)]
    kept = [w for w in words if w not in _STOP and (len(w) > 1 or w.isdigit())]
    return list(_stemmer().stemWords(kept))


def term_id(term: str) -> int:
    return zlib.crc32(term.encode()) & 0x7FFFFFFF


def encode_document(text: str, avg_length: float) -> SparseVector:
    counts = Counter(term_id(t) for t in terms(text))
    length = sum(counts.values())
    norm = K1 * (1 - B + B * length / max(avg_length, 1.0))
    ids = sorted(counts)
    return SparseVector(ids, [counts[i] * (K1 + 1) / (counts[i] + norm) for i in ids])


def encode_query(text: str) -> SparseVector:
    ids = sorted({term_id(t) for t in terms(text)})
    return SparseVector(ids, [1.0] * len(ids))
