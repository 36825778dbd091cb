"""The input filter: personal data and secrets are redacted before anything stores the
message or a model sees it (or the message is refused, per tenant), blocked terms get
the tenant's reply, and no log line, audit record or stored message holds what was
removed."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from typing import Any

import pytest

from adapters.memory import MemoryChannel
from core.llm.openai_chat import OpenAIAnswerer
from core.safety.detectors import find, iban_valid, luhn, redact
from core.sessions.models import ConversationKey
from observability import metrics
from tests.conftest import EngineKit, tenant
from tests.fakes.openai_server import FakeOpenAI

Build = Callable[..., Any]
CARD = "4111 1111 1111 1111"
SECRETS = ["jane.doe@example.com", "+31 20 555 0199", CARD, "NL91 ABNA 0417 1643 00",
           "sk-proj-abcdefghijklmnopqrstuvwx", "xoxb-123456789012-abcdefghijkl"]


def test_checks_that_avoid_false_alarms() -> None:
    assert luhn("4111111111111111") and not luhn("4111111111111112")
    assert iban_valid("NL91ABNA0417164300") and not iban_valid("NL92ABNA0417164300")
    quiet = ("Order 2026-11-05 shipped 12345678 items; call extension 42; version 1.2.3; "
             "card 4111 1111 1111 1112 is not a card; see https://example.com/a@b; "
             "ingest http://169.254.169.254/latest from 10.0.0.7, release 2.14.3.1")
    assert [f.kind for f in find(quiet)] == []


def test_every_kind_is_found_and_redacted_wherever_it_stands() -> None:
    rng = random.Random(7)
    for _ in range(50):
        words = ["please", "help", "with", "my", "order", "today"]
        planted = rng.sample(SECRETS, 3)
        for value in planted:
            words.insert(rng.randrange(len(words) + 1), value)
        text = " ".join(words)
        cleaned = redact(text, find(text))
        assert not any(value in cleaned for value in planted), cleaned
        assert "please" in cleaned and "today" in cleaned


def test_a_card_number_ending_a_sentence_is_found() -> None:
    assert [f.kind for f in find(f"My card is {CARD}.")] == ["card"]
    assert [f.kind for f in find("Pi is 3.141592653589793238 exactly.")] == []


async def test_redacted_before_the_model_and_the_store_and_never_logged(
        make_engine: Build, llm: FakeOpenAI, openai_answerer: Callable[[], OpenAIAnswerer],
        caplog: pytest.LogCaptureFixture) -> None:
    kit: EngineKit = await make_engine(tenant("acme"), answerer=openai_answerer())
    caplog.set_level(logging.DEBUG)
    before = metrics.SAFETY_EVENTS.labels("acme", "memory", "pii_card", "redacted")._value.get()
    text = (f"My card {CARD} was charged twice, mail ja\u200bne.doe@example.com "
            "or ring +31 20 555 0199.")
    turn = await MemoryChannel(kit.engine, "acme").send(text)
    assert turn.result.outcome == "answered"
    sent = str(llm.requests[-1]["messages"])
    stored = " ".join(m.text for m in await kit.sessions.recent(
        ConversationKey("acme", "memory", "t1"), 10))
    for value in (CARD, "jane.doe@example.com", "ja\u200bne.doe", "555 0199"):
        assert value not in sent and value not in stored and value not in caplog.text
    assert "[payment card number removed]" in sent and "[e-mail address removed]" in stored
    audit = await kit.deps.audit.recent("acme", 10)
    assert {r.command for r in audit} >= {"safety:pii_card", "safety:pii_email",
                                          "safety:pii_phone"}
    assert all(r.args_sha256 == "" for r in audit if r.command.startswith("safety:"))
    after = metrics.SAFETY_EVENTS.labels("acme", "memory", "pii_card", "redacted")._value.get()
    assert after == before + 1


async def test_a_tenant_may_refuse_or_allow_personal_data(
        make_engine: Build, llm: FakeOpenAI,
        openai_answerer: Callable[[], OpenAIAnswerer]) -> None:
    kit: EngineKit = await make_engine(
        tenant("strict", safety={"pii_action": "refuse"}),
        tenant("open", safety={"pii_action": "allow"}), answerer=openai_answerer())
    asked = len(llm.requests)
    refused = await MemoryChannel(kit.engine, "strict").send(f"charge {CARD} please")
    assert refused.result.outcome == "filtered" and "payment card number" in refused.text
    assert len(llm.requests) == asked  # the model never saw it
    assert await kit.sessions.recent(ConversationKey("strict", "memory", "t1"), 5) == []
    allowed = await MemoryChannel(kit.engine, "open").send(f"charge {CARD} please")
    assert allowed.result.outcome == "answered" and CARD in str(llm.requests[-1]["messages"])


async def test_blocked_terms_and_patterns_get_the_tenants_reply(
        make_engine: Build, llm: FakeOpenAI,
        openai_answerer: Callable[[], OpenAIAnswerer]) -> None:
    kit: EngineKit = await make_engine(tenant("acme", safety={
        "blocked_terms": ["project falcon"], "blocked_patterns": [r"\bcompetitor\s*x\b"],
        "blocked_reply": "That topic is off limits here."}), answerer=openai_answerer())
    channel = MemoryChannel(kit.engine, "acme")
    asked = len(llm.requests)
    for text in ("What is PROJECT Falcon?", "compare us to Competitor  X",
                 "What is project\u200b falcon?"):
        turn = await channel.send(text)
        assert turn.result.outcome == "filtered" and turn.text == "That topic is off limits here."
    assert len(llm.requests) == asked
    fine = await channel.send("Which projects ship falcons?")  # a word, not the phrase
    assert fine.result.outcome == "answered"


def test_a_pattern_that_does_not_compile_is_a_tenant_file_problem() -> None:
    from pydantic import ValidationError
    with pytest.raises(ValidationError, match="not a valid regular expression"):
        tenant("acme", safety={"blocked_patterns": ["(unclosed"]})
