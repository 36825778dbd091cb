"""The chat prompt: persona, numbered sources, bounded history, the question."""

from __future__ import annotations

from typing import Any

from core.llm.base import AnswerRequest

_SOURCES_RULES = (
    "Answer using the numbered sources below. Cite them inline as [1], [2]. "
    "If the sources do not contain the answer, say you found no source for it; "
    "do not guess."
)
_NO_SOURCES = "No knowledge base passages matched this question."


def build_messages(request: AnswerRequest) -> list[dict[str, Any]]:
    system = request.system_prompt.strip()
    if request.passages:
        numbered = "\n\n".join(
            f"[{i}] {p.title or p.source}\n{p.text.strip()}"
            for i, p in enumerate(request.passages, start=1)
        )
        system = f"{system}\n\n{_SOURCES_RULES}\n\nSources:\n{numbered}"
    elif request.knowledge_loaded:
        system = f"{system}\n\n{_NO_SOURCES}"
    messages: list[dict[str, Any]] = [{"role": "system", "content": system}]
    messages += [{"role": t.role, "content": t.content} for t in request.history]
    messages.append({"role": "user", "content": request.question})
    return messages
