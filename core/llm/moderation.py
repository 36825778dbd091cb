"""Provider moderation: the model provider's own classifier, asked about a message or an
answer, for tenants that turn it on (``[safety] moderation = true``).

One narrow port (``Moderator``) with the OpenAI implementation behind it
(``omni-moderation-latest`` through the ``openai`` client, one bounded attempt and a
short timeout, on its own small connection pool). It is an extra check on top of the
structural defences, not one of them: when the provider cannot be reached the call
raises ``ModerationUnavailable`` and the caller decides (the filters let the text
through and count it — a moderation outage must not lose messages).
"""

from __future__ import annotations

from typing import Protocol

import httpx2
import openai
from openai import AsyncOpenAI

MODEL = "omni-moderation-latest"


class ModerationUnavailable(RuntimeError):
    pass


class Moderator(Protocol):
    async def flagged(self, text: str) -> list[str]:
        """The categories the provider flags ``text`` for (empty: nothing flagged)."""
        ...

    async def close(self) -> None: ...


class OpenAIModerator:
    def __init__(self, api_key: str, base_url: str | None = None, *,
                 timeout_s: float = 5.0) -> None:
        self._client = AsyncOpenAI(
            api_key=api_key, base_url=base_url, max_retries=1, timeout=timeout_s,
            http_client=openai.DefaultAioHttpClient(
                limits=httpx2.Limits(max_connections=32, max_keepalive_connections=8)))

    async def flagged(self, text: str) -> list[str]:
        try:
            response = await self._client.moderations.create(model=MODEL, input=text[:32_000])
        except openai.OpenAIError as exc:
            raise ModerationUnavailable(f"moderation failed: {type(exc).__name__}") from exc
        found: set[str] = set()
        for result in response.results:
            if result.flagged:
                categories = result.categories
                hits = {name for name in type(categories).model_fields
                        if getattr(categories, name, False) is True}
                found |= hits or {"flagged"}  # (a category this SDK does not know)
        return sorted(found)

    async def close(self) -> None:
        await self._client.close()
