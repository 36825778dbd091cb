"""The in-memory channel adapter: the smallest possible user of the engine.

It owns no platform: a test says who sends what in which thread, and receives exactly
what a real adapter would render — every turn event, the streamed deltas and the final
reply.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from core.engine import Engine, TurnResult
from core.messages import Author, Binding, Channel, InboundMessage
from core.replies import Reply
from core.turns.collecting import CollectingDelivery
from core.turns.events import TurnEvent


@dataclass(slots=True)
class Delivery:
    result: TurnResult
    deltas: list[str]
    reply: Reply | None
    events: list[TurnEvent] = field(default_factory=list)

    @property
    def text(self) -> str:
        return self.reply.text if self.reply else ""


@dataclass(slots=True)
class MemoryChannel:
    engine: Engine
    tenant: str
    channel: Channel = "memory"
    binding_value: str = ""
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def message(self, text: str, *, thread: str = "t1", user: str = "u1",
                roles: frozenset[str] = frozenset(), message_id: str | None = None
                ) -> InboundMessage:
        return InboundMessage(
            binding=Binding(self.channel, self.binding_value or self.tenant),
            # The tenant is decided here, as every channel decides it at its edge; a
            # test that gives a platform binding exercises the registry's resolution.
            tenant_id="" if self.binding_value else self.tenant,
            thread=thread, author=Author(user, display_name=user, roles=roles), text=text,
            platform_message_id=message_id or f"m{next(self._ids)}")

    async def deliver(self, message: InboundMessage) -> Delivery:
        out = CollectingDelivery()
        result = await self.engine.handle(message, out)
        return Delivery(result, out.deltas, out.replies[-1] if out.replies else None,
                        out.events)

    async def send(self, text: str, **kwargs: object) -> Delivery:
        return await self.deliver(self.message(text, **kwargs))  # type: ignore[arg-type]
