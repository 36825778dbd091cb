"""A per-tenant cache of answers to first questions, invalidated by knowledge changes.

Keys hold the tenant, the tenant's knowledge generation, the model and the normalised
question. Any change to the tenant's knowledge bumps the generation, so no stale answer
and no other tenant's answer can ever be served. Follow-ups (questions with history) are
never cached: their answer depends on the conversation.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

from core.replies import Citation
from core.state.base import SharedState

_GENERATION_TTL_S = 400 * 86400


@dataclass(frozen=True, slots=True)
class CachedAnswer:
    text: str
    citations: tuple[Citation, ...]
    follow_ups: tuple[str, ...]
    confidence: float


def _normalise(question: str) -> str:
    return " ".join(question.lower().split()).rstrip("?!. ")


class AnswerCache:
    def __init__(self, state: SharedState, ttl_s: int = 3600) -> None:
        self._state = state
        self._ttl = ttl_s

    async def _key(self, tenant: str, model: str, question: str) -> str:
        generation = await self._state.get_int(f"{tenant}:kb_generation") or 0
        digest = hashlib.sha256(f"{model}\x1f{_normalise(question)}".encode()).hexdigest()
        return f"{tenant}:answer:{generation}:{digest[:40]}"

    async def get(self, tenant: str, model: str, question: str) -> CachedAnswer | None:
        raw = await self._state.cache_get(await self._key(tenant, model, question))
        if raw is None:
            return None
        data = json.loads(raw)
        return CachedAnswer(data["text"], tuple(Citation(**c) for c in data["citations"]),
                            tuple(data["follow_ups"]), float(data["confidence"]))

    async def put(self, tenant: str, model: str, question: str, answer: CachedAnswer) -> None:
        await self._state.cache_set(await self._key(tenant, model, question), json.dumps({
            "text": answer.text, "citations": [asdict(c) for c in answer.citations],
            "follow_ups": list(answer.follow_ups), "confidence": answer.confidence}),
            self._ttl)

    async def invalidate(self, tenant: str) -> None:
        await self._state.add(f"{tenant}:kb_generation", 1, _GENERATION_TTL_S)
