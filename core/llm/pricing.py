"""Estimated cost of a turn, in USD, from public list prices per million tokens.

A tenant file may set its own prices (for a proxy or a negotiated rate); an unknown model
without prices costs 0 and is logged once, so cost is never invented.
"""

from __future__ import annotations

import logging

log = logging.getLogger("switchboard.llm")

# (input, output) USD per 1M tokens; longest matching prefix wins.
LIST_PRICES: dict[str, tuple[float, float]] = {
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4o": (2.50, 10.00),
    "gpt-4.1-nano": (0.10, 0.40),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1": (2.00, 8.00),
    "gpt-3.5-turbo": (0.50, 1.50),
}
_warned: set[str] = set()


def price_of(model: str, override: tuple[float | None, float | None]) -> tuple[float, float]:
    if override[0] is not None and override[1] is not None:
        return override[0], override[1]
    for prefix in sorted(LIST_PRICES, key=len, reverse=True):
        if model.startswith(prefix):
            return LIST_PRICES[prefix]
    if model not in _warned:
        _warned.add(model)
        log.warning("no price known for model %r; cost recorded as 0", model)
    return 0.0, 0.0


def cost_usd(model: str, prompt_tokens: int, completion_tokens: int,
             override: tuple[float | None, float | None] = (None, None)) -> float:
    price_in, price_out = price_of(model, override)
    return round((prompt_tokens * price_in + completion_tokens * price_out) / 1_000_000, 8)
