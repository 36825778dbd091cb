"""The engine pipeline through the in-memory channel, over real stores."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from adapters.memory import MemoryChannel
from core.llm.extractive import NO_KNOWLEDGE
from core.llm.openai_chat import OpenAIAnswerer
from core.sessions.models import ConversationKey, TurnUsage
from core.stores.mongo_client import MongoConnection
from tests.conftest import EngineKit, tenant
from tests.fakes.openai_server import FakeOpenAI
from tests.servers import free_port

Build = Callable[..., Any]


async def test_chat_message_is_answered_and_stored(make_engine: Build) -> None:
    kit: EngineKit = await make_engine(tenant("acme"))
    delivery = await MemoryChannel(kit.engine, "acme").send("hello there")
    assert delivery.result.outcome == "answered"
    assert delivery.text == NO_KNOWLEDGE
    stored = await kit.sessions.recent(ConversationKey("acme", "memory", "t1"), 10)
    assert [(m.role, m.text) for m in stored] == [("user", "hello there"),
                                                  ("assistant", NO_KNOWLEDGE)]


async def test_answers_stream_and_follow_ups_carry_history(
        make_engine: Build, llm: FakeOpenAI,
        openai_answerer: Callable[[], OpenAIAnswerer]) -> None:
    kit: EngineKit = await make_engine(tenant("acme"), answerer=openai_answerer())
    channel = MemoryChannel(kit.engine, "acme")
    llm.chunk_delay_s = 0.03  # a hosted model's pace: the text arrives in several deltas
    first = await channel.send("Which plan am I on?")
    llm.chunk_delay_s = 0.0
    assert len(first.deltas) > 3 and "".join(first.deltas) == first.text
    assert {a.id for a in first.reply.actions} == {"feedback_up", "feedback_down"}
    await channel.send("and the second one?")
    sent = [(m["role"], m["content"]) for m in llm.requests[1]["messages"][1:]]
    assert sent == [("user", "Which plan am I on?"), ("assistant", first.text),
                    ("user", "and the second one?")]


async def test_two_tenants_with_identical_thread_ids_never_cross(
        make_engine: Build, llm: FakeOpenAI,
        openai_answerer: Callable[[], OpenAIAnswerer]) -> None:
    acme = tenant("acme", limits={"user_per_minute": 2})
    globex = tenant("globex", limits={"user_per_minute": 2})
    kit: EngineKit = await make_engine(acme, globex, answerer=openai_answerer())
    a, g = MemoryChannel(kit.engine, "acme"), MemoryChannel(kit.engine, "globex")
    await a.send("acme secret plan", thread="T1", user="u1", message_id="same")
    reply = await g.send("globex question", thread="T1", user="u1", message_id="same")
    assert reply.result.outcome == "answered"  # same platform id, other tenant: no dedupe
    assert "acme" not in str(llm.requests[-1]["messages"])  # no history crossed over
    assert (await a.send("/whoami", user="admin-a", roles=frozenset({"platform_admin"}))
            ).result.outcome == "command"
    # limits: each tenant's u1 has its own bucket of 2
    await a.send("second", thread="T1", user="u1")
    assert (await a.send("third", thread="T1", user="u1")).result.outcome == "rate_limited"
    assert (await g.send("second", thread="T1", user="u1")).result.outcome == "answered"
    # usage and audit stay per tenant
    now = datetime.now(UTC)
    acme_usage, globex_usage = (await kit.usage.month("acme", now),
                                await kit.usage.month("globex", now))
    assert acme_usage.turns == 2 and globex_usage.turns == 2
    await a.send("/stats", user="boss", roles=frozenset({"platform_admin"}))
    assert len(await kit.deps.audit.recent("acme", 10)) == 1
    assert await kit.deps.audit.recent("globex", 10) == []
    globex_history = await kit.sessions.recent(ConversationKey("globex", "memory", "T1"), 20)
    assert all("acme" not in m.text for m in globex_history)


async def test_redelivered_message_is_answered_once(make_engine: Build) -> None:
    kit: EngineKit = await make_engine(tenant("acme"))
    channel = MemoryChannel(kit.engine, "acme")
    message = channel.message("hello", message_id="Ev123")
    results = await asyncio.gather(*(channel.deliver(message) for _ in range(4)))
    outcomes = sorted(r.result.outcome for r in results)
    assert outcomes == ["answered", "duplicate", "duplicate", "duplicate"]
    assert sum(1 for r in results if r.reply is not None) == 1
    assert len(await kit.sessions.recent(ConversationKey("acme", "memory", "t1"), 10)) == 2


async def test_concurrent_messages_in_one_thread_are_answered_in_order(
        make_engine: Build, llm: FakeOpenAI,
        openai_answerer: Callable[[], OpenAIAnswerer]) -> None:
    llm.delay_s = 0.05
    kit: EngineKit = await make_engine(tenant("acme"), answerer=openai_answerer())
    channel = MemoryChannel(kit.engine, "acme")
    tasks = []
    for n in range(8):
        tasks.append(asyncio.create_task(channel.send(f"question {n}", thread="busy")))
        await asyncio.sleep(0.001 * (n % 2))  # some arrive in the same loop tick
    await asyncio.gather(*tasks)
    asked = [r["messages"][-1]["content"] for r in llm.requests]
    assert asked == [f"question {n}" for n in range(8)]
    stored = await kit.sessions.recent(ConversationKey("acme", "memory", "busy"), 20)
    assert [m.text for m in stored if m.role == "user"] == asked
    # each answer saw the previous turns: history grows by two messages per turn
    assert [len(r["messages"]) for r in llm.requests] == [2, 4, 6, 8, 10, 12, 14, 16]


async def test_llm_timeout_apologises_logs_and_keeps_the_message(
        make_engine: Build, llm: FakeOpenAI, caplog: pytest.LogCaptureFixture,
        openai_answerer: Callable[[], OpenAIAnswerer]) -> None:
    llm.delay_s = 1.0
    slow = tenant("acme", llm={"timeout_s": 0.2, "max_attempts": 1})
    kit: EngineKit = await make_engine(slow, answerer=openai_answerer())
    with caplog.at_level(logging.ERROR, logger="switchboard.engine"):
        delivery = await MemoryChannel(kit.engine, "acme").send("are you there?")
    assert delivery.result.outcome == "llm_error"
    assert delivery.reply.kind == "apology" and "try again" in delivery.text
    assert any("no answer from the language model" in r.getMessage() for r in caplog.records)
    stored = await kit.sessions.recent(ConversationKey("acme", "memory", "t1"), 10)
    assert next(m.text for m in stored) == "are you there?"


async def test_exhausted_budget_gives_a_clear_refusal(
        make_engine: Build, llm: FakeOpenAI,
        openai_answerer: Callable[[], OpenAIAnswerer]) -> None:
    kit: EngineKit = await make_engine(tenant("acme", llm={"monthly_token_budget": 30}),
                                       answerer=openai_answerer())
    await kit.usage.record("acme", TurnUsage("gpt-4o-mini", 20, 15, 0.0), datetime.now(UTC))
    delivery = await MemoryChannel(kit.engine, "acme").send("one more?")
    assert delivery.result.outcome == "budget_exhausted"
    assert "monthly AI budget" in delivery.text and "35 of 30" in delivery.text
    assert llm.requests == []


async def test_budget_counts_survive_a_restart(
        make_engine: Build, llm: FakeOpenAI,
        openai_answerer: Callable[[], OpenAIAnswerer]) -> None:
    kit: EngineKit = await make_engine(tenant("acme"), answerer=openai_answerer())
    await MemoryChannel(kit.engine, "acme").send("count me")
    used = await kit.usage.tokens_used("acme", datetime.now(UTC))
    await kit.usage.flush()
    from core.state.memory import MemoryState
    from core.stores.mongo_usage import MongoUsageStore
    from core.usage import UsageLedger
    fresh = UsageLedger(MongoUsageStore(kit.mongo.db), MemoryState())
    assert await fresh.tokens_used("acme", datetime.now(UTC)) == used > 0


async def test_unknown_tenant_is_rejected_without_reply(make_engine: Build) -> None:
    kit: EngineKit = await make_engine(tenant("acme"))
    delivery = await MemoryChannel(kit.engine, "nobody").send("hello?")
    assert delivery.result.outcome == "unknown_tenant" and delivery.reply is None
    slack = MemoryChannel(kit.engine, "acme", channel="slack", binding_value="T_UNBOUND")
    assert (await slack.send("hi")).result.outcome == "unknown_tenant"


async def test_rate_limit_refusal_says_when_to_retry(make_engine: Build) -> None:
    kit: EngineKit = await make_engine(tenant("acme", limits={"user_per_minute": 1}))
    channel = MemoryChannel(kit.engine, "acme")
    await channel.send("first")
    refused = await channel.send("second")
    assert refused.result.outcome == "rate_limited"
    assert refused.reply.ephemeral and refused.reply.retry_after_s == 60
    assert "try again in 60 seconds" in refused.text


async def test_admin_command_refused_for_non_admin_and_audited(make_engine: Build) -> None:
    kit: EngineKit = await make_engine(tenant("acme", admins={"slack": ["U_ADMIN"]}))
    channel = MemoryChannel(kit.engine, "acme")
    refused = await channel.send("/stats", user="U_RANDOM")
    assert refused.reply.kind == "refusal" and "admins only" in refused.text
    records = await kit.deps.audit.recent("acme", 10)
    assert [(r.user_id, r.command, r.outcome) for r in records] == [
        ("U_RANDOM", "stats", "refused")]
    assert len(records[0].args_sha256) == 64


async def test_admin_listed_in_tenant_file_runs_stats(make_engine: Build) -> None:
    acme = tenant("acme", slack={"team_ids": ["T_ACME"]}, admins={"slack": ["U_ADMIN"]})
    kit: EngineKit = await make_engine(acme)
    channel = MemoryChannel(kit.engine, "acme", channel="slack", binding_value="T_ACME")
    await channel.send("hello", user="U_SOMEONE")
    assert (await channel.send("/stats", user="U_SOMEONE")).reply.kind == "refusal"
    stats = await channel.send("/stats", user="U_ADMIN")
    assert "turns: 1 in 1 threads" in stats.text and "users: 1" in stats.text
    assert [r.outcome for r in await kit.deps.audit.recent("acme", 10)] == ["ok", "refused"]


async def test_unknown_command_and_bad_arguments_get_usage(make_engine: Build) -> None:
    kit: EngineKit = await make_engine(tenant("acme"))
    channel = MemoryChannel(kit.engine, "acme")
    assert "Unknown command `/frobnicate`" in (await channel.send("/frobnicate")).text
    bad = await channel.send("/forget everything")
    assert "Bad arguments for /forget" in bad.text and "Usage: `/forget [scope]`" in bad.text


async def test_help_lists_only_what_the_caller_may_run(make_engine: Build) -> None:
    kit: EngineKit = await make_engine(tenant("acme"))
    channel = MemoryChannel(kit.engine, "acme")
    plain = (await channel.send("/help")).text
    assert "/whoami" in plain and "/stats" not in plain
    admin = (await channel.send("/help", roles=frozenset({"platform_admin"}))).text
    assert "/stats" in admin and "/reload" in admin


async def test_forget_clears_the_thread(make_engine: Build) -> None:
    kit: EngineKit = await make_engine(tenant("acme"))
    channel = MemoryChannel(kit.engine, "acme")
    await channel.send("remember this")
    done = await channel.send("/forget")
    assert done.reply.ephemeral and "forgot this conversation" in done.text
    assert await kit.sessions.recent(ConversationKey("acme", "memory", "t1"), 10) == []


async def test_disabled_command_is_unknown(make_engine: Build) -> None:
    kit: EngineKit = await make_engine(tenant("acme", commands={"enabled": ["help"]}))
    reply = await MemoryChannel(kit.engine, "acme").send("/whoami")
    assert "Unknown command `/whoami`" in reply.text


async def test_unreachable_database_still_answers_and_journals_the_turn(
        make_engine: Build, caplog: pytest.LogCaptureFixture) -> None:
    dead = MongoConnection(f"mongodb://127.0.0.1:{free_port()}/?directConnection=true",
                           database="gone", timeout_ms=300)
    kit: EngineKit = await make_engine(tenant("acme"), database=dead)
    with caplog.at_level(logging.WARNING, logger="switchboard.engine"):
        delivery = await MemoryChannel(kit.engine, "acme").send("anyone?")
    await dead.close()
    assert delivery.result.outcome == "answered"
    [entry] = kit.deps.journal.pending()
    assert entry.state == "unstored" and [d["role"] for d in entry.stored] == ["user",
                                                                               "assistant"]
    assert any("answering without history" in r.getMessage() for r in caplog.records)


async def test_each_turn_logs_its_stages_with_ids(make_engine: Build,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    from observability.logging import JsonFormatter
    kit: EngineKit = await make_engine(tenant("acme"))
    channel = MemoryChannel(kit.engine, "acme")
    message = channel.message("hello")
    with caplog.at_level(logging.INFO, logger="switchboard.engine"):
        await channel.deliver(message)
    line = next(r for r in caplog.records if r.getMessage() == "turn answered")
    entry = __import__("json").loads(JsonFormatter().format(line))
    assert entry["request_id"] == message.request_id
    assert (entry["tenant"], entry["channel"]) == ("acme", "memory")
    assert list(entry["stages_ms"]) == ["resolve_tenant", "screen_input", "intake", "dedupe",
                                        "rate_limit",
                                        "lock",
                                        "load_session", "route", "respond", "persist", "usage"]


def test_secrets_never_reach_a_log_line() -> None:
    from observability.logging import JsonFormatter, register_secret
    register_secret("sk-live-very-secret-value")
    record = logging.makeLogRecord({"msg": "calling with key %s",
                                    "args": ("sk-live-very-secret-value",)})
    assert "very-secret" not in JsonFormatter().format(record)


async def test_garbage_from_the_model_never_loses_the_users_message(
        make_engine: Build, llm: FakeOpenAI,
        openai_answerer: Callable[[], OpenAIAnswerer]) -> None:
    from tests.fakes.openai_server import Fault

    kit: EngineKit = await make_engine(
        tenant("acme", limits={"user_per_minute": 100}, llm={"max_attempts": 1}),
        answerer=openai_answerer())
    channel = MemoryChannel(kit.engine, "acme")
    for n in range(20):
        llm.inject(Fault(garbage_at_chunk=0 if n % 2 else 3))
        delivery = await channel.send(f"question {n}", thread=f"g{n}")
        assert delivery.reply is not None and delivery.reply.kind == "apology"
        stored = await kit.sessions.recent(ConversationKey("acme", "memory", f"g{n}"), 10)
        assert [m.text for m in stored if m.role == "user"] == [f"question {n}"]


async def test_the_same_message_id_in_two_conversations_is_answered_in_both(
        make_engine: Build) -> None:
    """A widget client id is only unique within one visitor's conversation."""
    kit: EngineKit = await make_engine(tenant("acme"))
    channel = MemoryChannel(kit.engine, "acme")
    first = await channel.send("hello", thread="v:visitor-one", message_id="widget:abc123")
    second = await channel.send("hello", thread="v:visitor-two", message_id="widget:abc123")
    again = await channel.send("hello", thread="v:visitor-two", message_id="widget:abc123")
    assert (first.result.outcome, second.result.outcome) == ("answered", "answered")
    assert again.result.outcome == "duplicate"


async def test_a_whitespace_only_message_never_reaches_the_model(
        make_engine: Build, llm: FakeOpenAI,
        openai_answerer: Callable[[], OpenAIAnswerer]) -> None:
    kit: EngineKit = await make_engine(tenant("acme"), answerer=openai_answerer())
    delivery = await MemoryChannel(kit.engine, "acme").send("  \n\t ")
    assert delivery.result.outcome == "empty" and llm.requests == []
    assert delivery.reply is not None and "didn't get a question" in delivery.reply.text


async def test_an_edit_while_the_answer_streams_waits_for_the_turn_and_removes_it(
        make_engine: Build, llm: FakeOpenAI,
        openai_answerer: Callable[[], OpenAIAnswerer]) -> None:
    kit: EngineKit = await make_engine(tenant("acme"), answerer=openai_answerer())
    channel = MemoryChannel(kit.engine, "acme")
    llm.chunk_delay_s = 0.05
    try:
        question = channel.message("first wording", thread="edit-1", message_id="q-1")
        answering = asyncio.create_task(channel.deliver(question))
        for _ in range(500):
            if llm.requests:
                break
            await asyncio.sleep(0.01)
        removed = await kit.engine.remove_turn(question)  # the answer is still streaming
        assert (await answering).result.outcome == "answered"
    finally:
        llm.chunk_delay_s = 0.0
    assert removed is not None, "the edit found no turn and was dropped"
    assert await kit.sessions.recent(ConversationKey("acme", "memory", "edit-1"), 10) == []


async def test_a_structured_command_runs_whatever_its_display_text_says(
        make_engine: Build) -> None:
    from dataclasses import replace

    from core.messages import CommandCall
    kit: EngineKit = await make_engine(tenant("acme"))
    channel = MemoryChannel(kit.engine, "acme")
    message = replace(channel.message("ingest please"), command=CommandCall("whoami"))
    delivery = await channel.deliver(message)
    assert delivery.result.outcome == "command" and "Tenant" in delivery.text
    refused = await channel.deliver(replace(channel.message("x"),
                                            command=CommandCall("forget", {"scope": "all"})))
    assert refused.reply is not None and "Bad arguments" in refused.reply.text


async def test_search_refuses_an_answer_the_model_cut_off(
        make_engine: Build, llm: FakeOpenAI,
        openai_answerer: Callable[[], OpenAIAnswerer]) -> None:
    from tests.fakes.openai_server import Fault
    kit: EngineKit = await make_engine(tenant("acme"), answerer=openai_answerer())
    llm.inject(Fault(clean_cut_after_chunks=3))
    cut = await kit.engine.search(kit.engine.tenant("acme"), "What is the refund window?")
    assert cut.answer == "" and cut.refused == "the model's answer was cut off"
    whole = await kit.engine.search(kit.engine.tenant("acme"), "What is the refund window?")
    assert whole.refused == "" and whole.answer.startswith("Answer to")


async def test_a_thread_being_answered_counts_as_one_the_bot_is_in(
        make_engine: Build, llm: FakeOpenAI,
        openai_answerer: Callable[[], OpenAIAnswerer]) -> None:
    """A follow-up sent while (or just after) the first answer streams must not be taken
    for a message in a thread the bot never joined."""
    kit: EngineKit = await make_engine(tenant("acme"), answerer=openai_answerer())
    channel = MemoryChannel(kit.engine, "acme")
    llm.chunk_delay_s = 0.05
    try:
        answering = asyncio.create_task(channel.send("first question", thread="race-1"))
        for _ in range(500):
            if llm.requests:
                break
            await asyncio.sleep(0.01)
        joined = await kit.engine.conversation_exists("acme", "memory", "race-1")
        await answering
    finally:
        llm.chunk_delay_s = 0.0
    assert joined
    assert not await kit.engine.conversation_exists("acme", "memory", "never-joined")
