"""The metrics operators asked for: answers counted by grounding (a knowledge gap is a
``no_source``, apart from the cited ones), the time to an answer's first text, and the
estimated cost per tenant. Read from the process's Prometheus registry after real turns."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prometheus_client import REGISTRY

from adapters.memory import MemoryChannel
from core.knowledge.models import SourceDocument
from core.llm.openai_chat import OpenAIAnswerer
from core.turns.chain import OutboundChain
from core.turns.observe import count_events
from tests.conftest import EngineKit, tenant
from tests.fakes.openai_server import FakeOpenAI, Plan


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_answers_by_grounding_first_delta_and_cost(
        make_engine: Callable[..., Any], knowledge: Any, llm: FakeOpenAI,
        openai_answerer: Callable[[], OpenAIAnswerer]) -> None:
    import dataclasses
    config = tenant("metrics", tools={"enabled": False},
                    knowledge={"score_threshold": 0.3})

    async def docs() -> Any:
        yield SourceDocument(source="inline:refunds", title="Refunds",
                             content=b"# Refunds\n\nRefunds are paid within five days.",
                             content_type="text/markdown")
    strict = tenant("strict", tools={"enabled": False}, knowledge={"score_threshold": 0.99})
    await knowledge.ingestor.ingest_stream(config, docs())
    await knowledge.ingestor.ingest_stream(strict, docs())
    kit: EngineKit = await make_engine(config, strict, knowledge=knowledge,
                                       answerer=openai_answerer())
    engine = type(kit.engine)(dataclasses.replace(kit.deps,
                                                  outbound=OutboundChain((count_events,))))
    before = {g: sample("switchboard_answers_total", tenant="metrics", channel="memory",
                        grounding=g) for g in ("cited", "no_source", "uncited")}
    deltas = sample("switchboard_first_delta_seconds_count", channel="memory")
    llm.script = lambda body, step: Plan("Refunds are paid within five days [1].")
    chat = MemoryChannel(engine, "metrics")
    await chat.send("How long do refunds take?")
    llm.script = lambda body, step: Plan("I know nothing about volcanoes.")
    await chat.send("zzzz qqqq volcanic xylophones?")
    after = {g: sample("switchboard_answers_total", tenant="metrics", channel="memory",
                       grounding=g) for g in before}
    assert after["cited"] - before["cited"] == 1
    assert after["uncited"] - before["uncited"] == 1  # sources given, none cited
    assert sample("switchboard_first_delta_seconds_count", channel="memory") - deltas == 2
    gaps = sample("switchboard_answers_total", tenant="strict", channel="memory",
                  grounding="no_source")
    await MemoryChannel(engine, "strict").send("How long do refunds take?")
    assert sample("switchboard_answers_total", tenant="strict", channel="memory",
                  grounding="no_source") - gaps == 1  # documents, none close enough
    await kit.usage.flush()
    assert sample("switchboard_llm_cost_usd_total", tenant="metrics",
                  model="gpt-4o-mini") > 0
