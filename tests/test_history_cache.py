"""The history cache must never change what the engine sees, only how fast it sees it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from core.sessions.cached import CachedSessionStore
from core.sessions.models import ConversationKey, StoredMessage
from core.state.base import SharedState
from core.stores.mongo_client import MongoConnection
from core.stores.mongo_sessions import MongoSessionStore


def messages(key: ConversationKey, n: int, user: str = "u1",
             expires_in: timedelta = timedelta(days=30)) -> list[StoredMessage]:
    now = datetime.now(UTC) + timedelta(milliseconds=n)
    return [StoredMessage(key, "user", f"q{n}", user, f"t{n}", now, now + expires_in),
            StoredMessage(key, "assistant", f"a{n}", user, f"t{n}",
                          now + timedelta(microseconds=1), now + expires_in)]


async def stores(mongo: MongoConnection, state: SharedState, window: int = 6
                 ) -> tuple[MongoSessionStore, CachedSessionStore]:
    raw = MongoSessionStore(mongo.db)
    await raw.ensure_indexes()
    return raw, CachedSessionStore(raw, state, window=window)


async def test_cached_history_matches_the_store(mongo: MongoConnection,
                                                state: SharedState) -> None:
    raw, cached = await stores(mongo, state)
    key = ConversationKey("acme", "slack", "T1")
    for n in range(5):
        await cached.recent(key, 4)
        await cached.append(messages(key, n))
        for limit in (1, 4, 6):
            assert [m.text for m in await cached.recent(key, limit)] == \
                   [m.text for m in await raw.recent(key, limit)]


async def test_two_workers_sharing_state_see_each_others_turns(
        mongo: MongoConnection, state: SharedState) -> None:
    _, worker_a = await stores(mongo, state)
    _, worker_b = await stores(mongo, state)
    key = ConversationKey("acme", "slack", "T2")
    await worker_a.recent(key, 6)
    await worker_b.recent(key, 6)
    await worker_a.append(messages(key, 1))
    assert [m.text for m in await worker_b.recent(key, 6)] == ["q1", "a1"]


async def test_forget_invalidates_cached_history(mongo: MongoConnection,
                                                 state: SharedState) -> None:
    _, cached = await stores(mongo, state)
    thread = ConversationKey("acme", "widget", "c1")
    other = ConversationKey("acme", "widget", "c2")
    await cached.append(messages(thread, 1, "alice"))
    await cached.append(messages(other, 2, "alice"))
    assert len(await cached.recent(thread, 6)) == 2
    assert len(await cached.recent(other, 6)) == 2
    await cached.forget_thread(thread)
    assert await cached.recent(thread, 6) == []
    await cached.forget_user("acme", "alice")
    assert await cached.recent(other, 6) == []


async def test_cache_keys_are_per_tenant(mongo: MongoConnection, state: SharedState) -> None:
    _, cached = await stores(mongo, state)
    acme = ConversationKey("acme", "slack", "same")
    globex = ConversationKey("globex", "slack", "same")
    await cached.recent(acme, 6)
    await cached.recent(globex, 6)
    await cached.append(messages(acme, 1))
    assert await cached.recent(globex, 6) == []


async def test_expired_messages_are_not_served_from_cache(mongo: MongoConnection,
                                                          state: SharedState) -> None:
    _, cached = await stores(mongo, state)
    key = ConversationKey("acme", "slack", "old")
    await cached.recent(key, 6)
    await cached.append(messages(key, 1, expires_in=timedelta(milliseconds=-1)))
    assert await cached.recent(key, 6) == []


async def test_window_longer_than_cache_reads_the_store(mongo: MongoConnection,
                                                        state: SharedState) -> None:
    _, cached = await stores(mongo, state, window=2)
    key = ConversationKey("acme", "slack", "long")
    for n in range(3):
        await cached.append(messages(key, n))
    assert [m.text for m in await cached.recent(key, 5)] == ["a0", "q1", "a1", "q2", "a2"]
    assert [m.text for m in await cached.recent(key, 2)] == ["q2", "a2"]


async def test_text_with_tabs_and_newlines_survives_the_cache(
        mongo: MongoConnection, state: SharedState) -> None:
    _, cached = await stores(mongo, state)
    key = ConversationKey("acme", "widget", "T7")
    await cached.recent(key, 6)
    now = datetime.now(UTC)
    tricky = "col\tumn\nline two\n\nv2 1\n\tstarts with a tab"
    await cached.append([StoredMessage(key, "user", tricky, "u\t1", "t\t\u00e91", now,
                                       now + timedelta(days=1))])
    (back,) = await cached.recent(key, 6)
    assert (back.text, back.user_id, back.turn_id) == (tricky, "u\t1", "t\t\u00e91")


async def test_a_window_cached_by_an_older_version_is_a_miss(
        mongo: MongoConnection, state: SharedState) -> None:
    """A rolling upgrade meets windows in the previous format in Redis: they are read
    from the store instead, and an append drops them rather than extend them."""
    raw, cached = await stores(mongo, state)
    key = ConversationKey("acme", "slack", "T8")
    await raw.append(messages(key, 1))
    old = '{"complete":true,"messages":[]}'
    await state.cache_set(cached._key(key), old, 60)
    assert [m.text for m in await cached.recent(key, 6)] == ["q1", "a1"]
    await state.cache_set(cached._key(key), old, 60)
    await cached.append(messages(key, 2))
    assert await state.cache_get(cached._key(key)) is None
    assert [m.text for m in await cached.recent(key, 6)] == ["q1", "a1", "q2", "a2"]
