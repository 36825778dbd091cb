"""The outbound chain: stages run in order, each may pass, change, hold back or add
events, and the delivery's receipt of the reply is what the engine keeps."""

from __future__ import annotations

from core.messages import Author, Binding, InboundMessage
from core.replies import Reply
from core.turns.chain import Next, OutboundChain
from core.turns.collecting import CollectingDelivery
from core.turns.events import NOTHING, FinalReply, Receipt, TextDelta, TurnEvent, TurnStarted

MESSAGE = InboundMessage(Binding("memory", "acme"), "t1", Author("u1"), "hi", "m1")


class Numbered(CollectingDelivery):
    async def deliver(self, event: TurnEvent) -> Receipt:
        await super().deliver(event)
        return Receipt(f"msg-{len(self.events)}")


async def test_stages_run_in_order_and_may_change_hold_or_add_events() -> None:
    order: list[str] = []

    async def first(event: TurnEvent, next_stage: Next) -> Receipt:
        order.append("first")
        if isinstance(event, TextDelta):
            return await next_stage(TextDelta(event.turn_id, event.text.upper()))
        return await next_stage(event)

    async def second(event: TurnEvent, next_stage: Next) -> Receipt:
        order.append("second")
        if isinstance(event, TextDelta) and "SECRET" in event.text:
            return NOTHING  # held back: the channel never sees it
        if isinstance(event, FinalReply):
            await next_stage(TextDelta(event.turn_id, "[checked]"))
        return await next_stage(event)

    delivery = Numbered()
    out = OutboundChain([first, second]).bind(delivery)
    await out.emit(TurnStarted("t", MESSAGE))
    await out.emit(TextDelta("t", "hello "))
    await out.emit(TextDelta("t", "secret"))
    receipt = await out.emit(FinalReply("t", Reply("HELLO")))
    assert order == ["first", "second"] * 4
    assert delivery.deltas == ["HELLO ", "[checked]"]
    assert receipt.message_id == "msg-4" and out.reply_id == "msg-4"


async def test_the_first_streamed_message_is_the_reply_until_the_reply_says_otherwise() -> None:
    delivery = Numbered()
    out = OutboundChain().bind(delivery)
    await out.emit(TextDelta("t", "a"))
    assert out.reply_id == "msg-1"
    await out.emit(TextDelta("t", "b"))
    assert out.reply_id == "msg-1"
    await out.emit(FinalReply("t", Reply("ab")))
    assert out.reply_id == "msg-3"
