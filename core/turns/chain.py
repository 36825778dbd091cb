"""The ordered chain of outbound stages every turn event travels before its channel.

Like bolt-python's middleware: a stage is called with the event and the next step, and
may pass the event on (``await next(event)``), change it, hold it back, or emit others.
The chain is composed once in the process's bootstrap (metrics today; safety filters
and observers later) and bound to each turn's channel delivery, which is the last step.
The delivery dispatches on the event's type and returns a ``Receipt``; the engine keeps
the receipt of the reply, so it never has to read a platform id back from an adapter.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Protocol

from core.turns.events import FinalReply, Receipt, TextDelta, TurnEvent, TurnFailed
from observability.tracing import span

Next = Callable[[TurnEvent], Awaitable[Receipt]]


class Stage(Protocol):
    async def __call__(self, event: TurnEvent, next_stage: Next) -> Receipt: ...


class Delivery(Protocol):
    """A channel's end of the chain for one turn."""

    @property
    def address(self) -> Mapping[str, object]:
        """Where it delivers, as plain data (``{"kind": "slack-thread", ...}``), for
        deliveries that can be rebuilt after a restart; empty for the others. Journaled
        with each accepted message so a turn a crash interrupted is answered there."""
        ...

    async def deliver(self, event: TurnEvent) -> Receipt: ...


class Outbound:
    """One turn's bound chain: ``emit`` runs an event through every stage to the
    delivery, and remembers where the reply went."""

    __slots__ = ("_first", "delivery", "reply_id")

    def __init__(self, stages: Sequence[Stage], delivery: Delivery) -> None:
        self.delivery = delivery
        self.reply_id = ""
        """The platform id of the reply (first message that showed the answer)."""
        step: Next = _traced(delivery)
        for stage in reversed(stages):
            step = _link(stage, step)
        self._first = step

    async def emit(self, event: TurnEvent) -> Receipt:
        receipt = await self._first(event)
        if receipt.message_id and (isinstance(event, FinalReply | TurnFailed)
                                   or (isinstance(event, TextDelta) and not self.reply_id)):
            self.reply_id = receipt.message_id
        return receipt


def _traced(delivery: Delivery) -> Next:
    """The delivery, with a ``deliver`` span around handing over the reply (the other
    events of a turn are too many, and too small, to be worth a span each)."""
    name = type(delivery).__name__

    async def deliver(event: TurnEvent) -> Receipt:
        if not isinstance(event, FinalReply | TurnFailed):
            return await delivery.deliver(event)
        with span("deliver", attributes={
                "switchboard.delivery": name, "switchboard.event": type(event).__name__}):
            return await delivery.deliver(event)
    return deliver


def _link(stage: Stage, next_stage: Next) -> Next:
    async def step(event: TurnEvent) -> Receipt:
        return await stage(event, next_stage)
    return step


class OutboundChain:
    """The process's stages, in order; ``bind`` attaches one turn's delivery."""

    def __init__(self, stages: Sequence[Stage] = ()) -> None:
        self.stages: tuple[Stage, ...] = tuple(stages)

    def bind(self, delivery: Delivery) -> Outbound:
        return Outbound(self.stages, delivery)
