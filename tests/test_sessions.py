"""Conversation storage against the MongoDB-wire server (or real mongod via MONGODB_URI)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from core.sessions.history import window
from core.sessions.models import ConversationKey, StoredMessage, TurnUsage
from core.stores.mongo_client import MongoConnection
from core.stores.mongo_sessions import MongoSessionStore

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def turn(key: ConversationKey, n: int, user: str = "u1", *, at: datetime = NOW,
         days: int = 30) -> list[StoredMessage]:
    expires = at + timedelta(days=days)
    t = at + timedelta(seconds=n)
    return [
        StoredMessage(key, "user", f"question {n}", user, f"turn{n}", t, expires, f"m{n}"),
        StoredMessage(key, "assistant", f"answer {n}", user, f"turn{n}",
                      t + timedelta(milliseconds=1), expires, kind="answer",
                      usage=TurnUsage("gpt-4o-mini", 10, 5, 0.001)),
    ]


async def store(mongo: MongoConnection) -> MongoSessionStore:
    sessions = MongoSessionStore(mongo.db)
    await sessions.ensure_indexes()
    return sessions


async def test_recent_returns_last_messages_oldest_first(mongo: MongoConnection) -> None:
    sessions = await store(mongo)
    key = ConversationKey("acme", "slack", "1700000000.000100")
    for n in range(6):
        await sessions.append(turn(key, n))
    recent = await sessions.recent(key, 4)
    assert [m.text for m in recent] == ["question 4", "answer 4", "question 5", "answer 5"]


async def test_identical_thread_ids_of_two_tenants_never_cross(mongo: MongoConnection) -> None:
    sessions = await store(mongo)
    acme = ConversationKey("acme", "slack", "T1")
    globex = ConversationKey("globex", "slack", "T1")
    await sessions.append(turn(acme, 1))
    await sessions.append(turn(globex, 2))
    assert {m.key.tenant for m in await sessions.recent(acme, 10)} == {"acme"}
    assert [m.text for m in await sessions.recent(globex, 10)] == ["question 2", "answer 2"]
    await sessions.forget_user("globex", "u1")
    assert len(await sessions.recent(acme, 10)) == 2


async def test_forget_thread_removes_it_from_history(mongo: MongoConnection) -> None:
    sessions = await store(mongo)
    key = ConversationKey("acme", "widget", "conv-1")
    other = ConversationKey("acme", "widget", "conv-2")
    await sessions.append(turn(key, 1))
    await sessions.append(turn(other, 2))
    assert await sessions.forget_thread(key) == 2
    assert await sessions.recent(key, 10) == []
    assert len(await sessions.recent(other, 10)) == 2


async def test_forget_me_deletes_questions_and_keeps_usage(mongo: MongoConnection) -> None:
    sessions = await store(mongo)
    await sessions.append(turn(ConversationKey("acme", "slack", "a"), 1, "alice"))
    await sessions.append(turn(ConversationKey("acme", "discord", "b"), 2, "alice"))
    await sessions.append(turn(ConversationKey("acme", "slack", "c"), 3, "bob"))
    assert await sessions.forget_user("acme", "alice") == 4
    assert await sessions.user_threads("acme", "alice", 10) == []
    assert await mongo.db["messages"].count_documents({"text": {"$regex": "question [12]"}}) == 0
    kept = await mongo.db["messages"].count_documents({"usage.prompt_tokens": 10})
    assert kept == 3  # alice's two answers are redacted, not deleted: billing survives
    assert [t.thread for t in await sessions.user_threads("acme", "bob", 10)] == ["c"]


async def test_user_threads_newest_first(mongo: MongoConnection) -> None:
    sessions = await store(mongo)
    for n, thread in enumerate(["x", "y", "z"]):
        await sessions.append(turn(ConversationKey("acme", "slack", thread), n * 10))
    threads = await sessions.user_threads("acme", "u1", 2)
    assert [t.thread for t in threads] == ["z", "y"]
    assert threads[0].messages == 2


async def test_stats_count_turns_users_threads_of_one_tenant(mongo: MongoConnection) -> None:
    sessions = await store(mongo)
    await sessions.append(turn(ConversationKey("acme", "slack", "a"), 1, "alice"))
    await sessions.append(turn(ConversationKey("acme", "slack", "a"), 2, "bob"))
    await sessions.append(turn(ConversationKey("globex", "slack", "a"), 3, "carol"))
    stats = await sessions.stats("acme", NOW - timedelta(days=1))
    assert (stats.turns, stats.users, stats.threads) == (2, 2, 1)


async def test_purge_expired_respects_retention(mongo: MongoConnection) -> None:
    sessions = await store(mongo)
    key = ConversationKey("acme", "slack", "old")
    await sessions.append(turn(key, 1, days=1))
    await sessions.append(turn(key, 2, days=60))
    assert await sessions.purge_expired(NOW + timedelta(days=2)) == 2
    assert [m.text for m in await sessions.recent(key, 10)] == ["question 2", "answer 2"]


async def test_indexes_cover_thread_and_user_queries(mongo: MongoConnection) -> None:
    sessions = await store(mongo)
    indexes = await (await mongo.db["messages"].list_indexes()).to_list()
    keys = {tuple(dict(i["key"])) for i in indexes}
    assert {("tenant", "channel", "thread", "at"), ("tenant", "user_id", "at"),
            ("tenant", "channel", "platform_message_id"), ("expires_at",)} <= keys
    ttl = [i for i in indexes if tuple(dict(i["key"])) == ("expires_at",)]
    assert ttl[0].get("expireAfterSeconds") == 0
    del sessions


def test_history_window_keeps_newest_within_token_budget() -> None:
    key = ConversationKey("acme", "slack", "t")
    messages = [m for n in range(10) for m in turn(key, n)]
    kept = window(messages, token_budget=12)
    assert kept[-1].text == "answer 9"
    assert kept[0].role == "user"
    assert sum(len(m.text) // 4 + 1 for m in kept) <= 12 + len(kept)
    assert window(messages, 0) == []


async def test_remove_turn_deletes_both_messages_and_reports_the_reply(
        mongo: MongoConnection) -> None:
    sessions = await store(mongo)
    key = ConversationKey("acme", "slack", "C1:100.1")
    first, second = turn(key, 1), turn(key, 2)
    answered = StoredMessage(key, "assistant", "answer 1", "u1", "turn1",
                             first[1].at, first[1].expires_at, "C1:reply.9")
    await sessions.append([first[0], answered])
    await sessions.append(second)
    assert await sessions.remove_turn(key, "m1") == ("turn1", "C1:reply.9")
    assert [m.text for m in await sessions.recent(key, 10)] == ["question 2", "answer 2"]
    assert await sessions.remove_turn(key, "m1") is None
    other = ConversationKey("globex", "slack", "C1:100.1")
    assert await sessions.remove_turn(other, "m2") is None
