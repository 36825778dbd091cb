"""The history window sent to the model: recent turns within a token budget."""

from __future__ import annotations

from core.sessions.models import StoredMessage


def estimate_tokens(text: str) -> int:
    """A cheap, tokenizer-free estimate (about four characters per token for English)."""
    return max(1, (len(text) + 3) // 4)


def window(messages: list[StoredMessage], token_budget: int) -> list[StoredMessage]:
    """The newest messages whose estimated size fits the budget, oldest first.

    Never starts with an assistant message (a reply without its question confuses models).
    """
    kept: list[StoredMessage] = []
    spent = 0
    for message in reversed(messages):
        if not message.text:
            continue
        cost = estimate_tokens(message.text)
        if spent + cost > token_budget:
            break
        kept.append(message)
        spent += cost
    kept.reverse()
    while kept and kept[0].role == "assistant":
        kept.pop(0)
    return kept
