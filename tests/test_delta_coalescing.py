"""Text deltas are merged to a readable pace: the first goes at once, later ones at most
every interval, held text goes before any other event, and the deltas add up to the
reply — with an instant model and with one that streams at a hosted model's pace."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from adapters.memory import MemoryChannel
from core.llm.openai_chat import OpenAIAnswerer
from core.turns.coalesce import DELTA_INTERVAL_S, DeltaCoalescer
from core.turns.collecting import CollectingDelivery
from core.turns.events import Receipt, TextDelta, TurnEvent
from tests.conftest import EngineKit, tenant
from tests.fakes.openai_server import FakeOpenAI

Build = Callable[..., Any]


class Sent(list[tuple[float, str]]):
    async def __call__(self, text: str) -> None:
        self.append((asyncio.get_running_loop().time(), text))

    @property
    def texts(self) -> list[str]:
        return [text for _, text in self]


async def test_the_first_delta_goes_at_once_and_a_burst_is_merged() -> None:
    sent = Sent()
    deltas = DeltaCoalescer(sent, interval_s=0.2)
    for word in ("The", " answer", " is", " forty", " two."):
        await deltas.add(word)
    assert sent.texts == ["The"]
    await deltas.close()
    assert sent.texts == ["The", " answer is forty two."]


async def test_held_text_is_sent_when_the_model_pauses() -> None:
    sent = Sent()
    deltas = DeltaCoalescer(sent, interval_s=0.05)
    await deltas.add("one")
    await deltas.add(" two")
    await asyncio.sleep(0.2)  # the model is silent; nobody calls flush or close
    assert sent.texts == ["one", " two"]
    assert sent[1][0] - sent[0][0] >= 0.05
    await deltas.close()
    assert sent.texts == ["one", " two"]


async def test_flush_sends_held_text_before_the_next_event() -> None:
    order: list[str] = []

    async def send(text: str) -> None:
        order.append(f"delta:{text}")

    deltas = DeltaCoalescer(send, interval_s=10)
    await deltas.add("Let me ")
    await deltas.add("calculate.")
    await deltas.flush()
    order.append("tool")
    await deltas.close()
    assert order == ["delta:Let me ", "delta:calculate.", "tool"]


async def test_an_instant_model_reaches_the_channel_in_a_few_deltas(
        make_engine: Build, openai_answerer: Callable[[], OpenAIAnswerer]) -> None:
    kit: EngineKit = await make_engine(tenant("acme"), answerer=openai_answerer())
    turn = await MemoryChannel(kit.engine, "acme").send("What is the policy on refunds?")
    words = len(turn.text.split())
    assert words > 5 and len(turn.deltas) <= 2
    assert "".join(turn.deltas) == turn.text


class Stamped(CollectingDelivery):
    """Keeps every event and when each text delta reached the channel."""

    def __init__(self) -> None:
        super().__init__()
        self.stamps: list[float] = []

    async def deliver(self, event: TurnEvent) -> Receipt:
        if isinstance(event, TextDelta):
            self.stamps.append(asyncio.get_running_loop().time())
        return await super().deliver(event)


async def test_a_paced_model_streams_at_most_one_delta_per_interval(
        make_engine: Build, llm: FakeOpenAI,
        openai_answerer: Callable[[], OpenAIAnswerer]) -> None:
    kit: EngineKit = await make_engine(tenant("acme"), answerer=openai_answerer())
    channel = MemoryChannel(kit.engine, "acme")
    llm.chunk_delay_s = 0.02  # 50 tokens a second
    out = Stamped()
    await kit.engine.handle(channel.message("What is the policy on refunds for order 12?"), out)
    reply = out.replies[-1]
    assert "".join(out.deltas) == reply.text
    assert 3 <= len(out.deltas) < len(reply.text.split())  # streamed, but merged
    # Every send but the last (the rest, sent when the answer ends) waited its interval.
    gaps = [b - a for a, b in zip(out.stamps[:-2], out.stamps[1:-1], strict=True)]
    assert gaps and min(gaps) >= DELTA_INTERVAL_S * 0.9
