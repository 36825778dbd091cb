"""The red-team suite (``tests/redteam/*.yaml``) against the stand-in model scripted to
obey each attack: the defences hold when the model does exactly what the attacker says.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from core.llm.openai_chat import OpenAIAnswerer
from core.state.memory import MemoryState
from core.stores.mongo_client import MongoConnection
from tests.fakes.openai_server import FakeOpenAI
from tests.redteam.harness import Case, Stores, load_cases, obeying_script, run_case

CASES = load_cases()


def test_the_suite_covers_every_attack_the_issue_names() -> None:
    assert len(CASES) >= 40
    categories = Counter(c.category for c in CASES)
    assert set(categories) >= {"direct_injection", "indirect_injection", "prompt_extraction",
                               "cross_tenant", "cross_user", "exfiltration", "tool_misuse",
                               "ssrf", "pii_in", "pii_out", "encoding", "long_input"}
    assert {c.planted for c in CASES} == {"message", "document", "web_page", "shared_thread"}
    assert {c.channel for c in CASES} >= {"slack", "discord", "widget", "terminal"}


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
async def test_the_defences_hold_when_the_model_obeys(
        case: Case, mongo: MongoConnection, knowledge: Any, llm: FakeOpenAI,
        openai_answerer: Callable[[], OpenAIAnswerer]) -> None:
    llm.script = obeying_script(case, case.text if case.planted == "message" else case.ask)
    outcome = await run_case(Stores(mongo, MemoryState(), knowledge, openai_answerer()), case,
                             0, lambda: [r for r in llm.requests if "messages" in r])
    assert outcome.passed, (outcome.failures, outcome.shown[:1500])
