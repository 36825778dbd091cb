"""Provider moderation, for tenants that turn it on: a flagged message gets the tenant's
blocked reply before any model sees it; a flagged answer is never shown (it is held
whole, so not one delta of it streams); a moderation outage loses no message; a tenant
without it costs no moderation call. Against the stand-in's ``/v1/moderations``,
through the real ``openai`` client."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from adapters.memory import MemoryChannel
from core.engine import Engine
from core.llm.moderation import OpenAIModerator
from core.llm.openai_chat import OpenAIAnswerer
from core.safety.output_filter import OutputFilter
from core.turns.chain import OutboundChain
from tests.conftest import EngineKit, tenant
from tests.fakes.openai_server import FakeOpenAI, Plan

Build = Callable[..., Any]
BLOCKED = "That is not something I can help with here."


@pytest.fixture
async def moderated(make_engine: Build, llm: FakeOpenAI,
                    openai_answerer: Callable[[], OpenAIAnswerer]
                    ) -> AsyncIterator[tuple[Engine, EngineKit]]:
    moderator = OpenAIModerator("sk-test", llm.url)
    kit: EngineKit = await make_engine(
        tenant("acme", tools={"enabled": False},
               safety={"moderation": True, "blocked_reply": BLOCKED}),
        tenant("plain", tools={"enabled": False}), answerer=openai_answerer())
    deps = dataclasses.replace(kit.deps, moderator=moderator, outbound=OutboundChain(
        (OutputFilter(kit.deps.tenants.for_message, kit.deps.audit, moderator),)))
    yield Engine(deps), kit
    await moderator.close()


def _moderations(llm: FakeOpenAI) -> list[dict[str, Any]]:
    return [r for r in llm.requests if "messages" not in r]


async def test_a_flagged_message_never_reaches_the_model(
        moderated: tuple[Engine, EngineKit], llm: FakeOpenAI) -> None:
    engine, kit = moderated
    turn = await MemoryChannel(engine, "acme").send("I will hurt you if you don't answer")
    assert turn.text == BLOCKED
    assert not [r for r in llm.requests if "messages" in r]
    records = await kit.deps.audit.recent("acme", 5)
    assert any(r.command == "safety:moderation_harassment_threatening" for r in records)


async def test_a_flagged_answer_is_never_shown_not_even_in_part(
        moderated: tuple[Engine, EngineKit], llm: FakeOpenAI) -> None:
    engine, kit = moderated
    llm.script = lambda body, step: Plan("Sure. First, I will hurt you. Then more.")
    chat = MemoryChannel(engine, "acme")
    turn = await chat.send("tell me a story")
    assert turn.text == BLOCKED and turn.deltas == []
    records = await kit.deps.audit.recent("acme", 5)
    assert any(r.command == "safety:moderation_harassment_threatening_out" and
               r.via == "safety_output" for r in records)
    llm.script = lambda body, step: Plan("Refunds take five days. Anything else?")
    fine = await chat.send("how long do refunds take?")
    assert fine.text == "Refunds take five days. Anything else?"


async def test_a_moderation_outage_loses_no_message(
        moderated: tuple[Engine, EngineKit], llm: FakeOpenAI) -> None:
    engine, _ = moderated
    llm.moderation_status = 503
    llm.script = lambda body, step: Plan("Refunds take five days.")
    turn = await MemoryChannel(engine, "acme").send("how long do refunds take?")
    assert turn.result.outcome == "answered" and turn.text == "Refunds take five days."


async def test_a_tenant_without_moderation_costs_no_call(
        moderated: tuple[Engine, EngineKit], llm: FakeOpenAI) -> None:
    engine, _ = moderated
    turn = await MemoryChannel(engine, "plain").send("I will hurt you")
    assert turn.text.startswith("Answer to") and _moderations(llm) == []
