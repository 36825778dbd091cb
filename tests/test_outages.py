"""Real servers killed and paused under load: no accepted message is lost.

Each test owns its server (a redis-server, an nx-27017 MongoDB-wire server), sends a
steady stream of chat messages through the engine, takes the server away mid-stream —
``SIGKILL`` for Redis (connections refused), ``SIGSTOP`` for MongoDB (connections hang
until the driver's timeouts) — brings it back, and counts: sent, answered, apologised,
stored. The outage lasts ``SWITCHBOARD_CHAOS_OUTAGE_S`` seconds (5 in the suite;
``benchmarks/chaos.py`` runs the 20-second version and records the figures).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import pytest
from redis.exceptions import RedisError

from adapters.memory import MemoryChannel
from core.engine import EngineSettings
from core.intake.recovery import Recovery
from core.sessions.models import ConversationKey
from core.state.redis import RedisState
from core.state.resilient import ResilientState
from core.stores.mongo_client import MongoConnection
from core.turns.chain import Delivery
from tests.conftest import EngineKit, tenant
from tests.servers import ServerProcess, start_mongo_wire, start_redis

OUTAGE_S = float(os.environ.get("SWITCHBOARD_CHAOS_OUTAGE_S", "5"))
# benchmarks/chaos.py only: record the counts, and measure the old behaviour beside it.
REPORT = os.environ.get("SWITCHBOARD_CHAOS_REPORT", "")
NO_FALLBACK = os.environ.get("SWITCHBOARD_CHAOS_NO_FALLBACK", "") == "1"
RATE_PER_S = 20
LIMITS = {"user_per_minute": 10_000, "tenant_per_minute": 100_000}


@dataclass
class Tally:
    sent: int = 0
    answered: int = 0
    apologised: int = 0
    other: dict[str, int] = field(default_factory=dict)
    during_outage: int = 0
    answered_during_outage: int = 0


async def steady_load(channel: MemoryChannel, seconds: float, outage: asyncio.Event,
                      tally: Tally, threads: int = 8) -> list[tuple[str, str]]:
    """Send RATE_PER_S messages a second for ``seconds``, each awaited in its own task;
    returns (thread, message id) of every message sent."""
    sent: list[tuple[str, str]] = []
    tasks: list[asyncio.Task[None]] = []

    async def one(n: int, in_outage: bool) -> None:
        thread, message_id = f"t{n % threads}", f"m{n}"
        sent.append((thread, message_id))
        delivery = await channel.send(f"question {n}", thread=thread, user=f"u{n % 5}",
                                      message_id=message_id)
        outcome = delivery.result.outcome
        if outcome == "answered":
            tally.answered += 1
            tally.answered_during_outage += in_outage
        elif delivery.reply is not None and delivery.reply.kind == "apology":
            tally.apologised += 1
        else:
            tally.other[outcome] = tally.other.get(outcome, 0) + 1

    loop = asyncio.get_running_loop()
    started = loop.time()
    n = 0
    while loop.time() - started < seconds:
        in_outage = outage.is_set()
        tally.sent += 1
        tally.during_outage += in_outage
        tasks.append(asyncio.create_task(one(n, in_outage)))
        n += 1
        await asyncio.sleep(1 / RATE_PER_S)
    await asyncio.gather(*tasks)
    return sent


def report(scenario: str, tally: Tally, stored: int) -> None:
    if REPORT:
        with open(REPORT, "a") as out:
            out.write(json.dumps({"scenario": scenario, "outage_s": OUTAGE_S,
                                  "fallback": not NO_FALLBACK, "stored": stored,
                                  **asdict(tally)}) + "\n")


async def stored_questions(kit: EngineKit, sent: list[tuple[str, str]]) -> int:
    found = 0
    for thread in sorted({t for t, _ in sent}):
        messages = await kit.deps.sessions.recent(ConversationKey("acme", "memory", thread),
                                                  10_000)
        ids = {m.platform_message_id for m in messages if m.role == "user"}
        found += sum(1 for t, m in sent if t == thread and m in ids)
    return found


# -- Redis killed ----------------------------------------------------------------------

@pytest.fixture
def own_redis() -> Iterator[ServerProcess]:
    server = start_redis()
    yield server
    server.stop()


@pytest.fixture
async def state(own_redis: ServerProcess) -> AsyncIterator[ResilientState]:
    """The engine's shared state, as bootstrap builds it, on a Redis this test kills."""
    resilient = ResilientState(RedisState(own_redis.url, prefix=f"t{uuid.uuid4().hex[:6]}:",
                                          timeout_s=0.5),
                               errors=() if NO_FALLBACK else (RedisError, OSError),
                               retry_after_s=0.5)
    yield resilient
    await resilient.close()


async def test_redis_killed_under_load_loses_no_message(
        make_engine: Callable[..., Any], own_redis: ServerProcess,
        state: ResilientState) -> None:
    kit: EngineKit = await make_engine(tenant("acme", limits=LIMITS),
                                       settings=EngineSettings(lock_wait_s=30))
    channel = MemoryChannel(kit.engine, "acme")
    outage, tally = asyncio.Event(), Tally()

    async def chaos() -> None:
        await asyncio.sleep(1.0)
        await asyncio.to_thread(own_redis.kill)
        outage.set()
        await asyncio.sleep(OUTAGE_S)
        await asyncio.to_thread(own_redis.restart)
        outage.clear()

    chaos_task = asyncio.create_task(chaos())
    sent = await steady_load(channel, OUTAGE_S + 3.0, outage, tally)
    await chaos_task
    stored = await stored_questions(kit, sent)
    report("redis_killed", tally, stored)

    assert tally.during_outage >= RATE_PER_S * OUTAGE_S * 0.5, tally
    assert tally.answered == tally.sent, tally
    assert tally.answered_during_outage >= 0.95 * tally.during_outage, tally
    assert stored == tally.sent
    assert not state.degraded, "the state did not return to Redis after the restart"
    assert kit.deps.journal.pending() == []


# -- MongoDB paused --------------------------------------------------------------------

@pytest.fixture
def own_mongo() -> Iterator[ServerProcess]:
    server = start_mongo_wire()
    yield server
    server.stop()


async def _stored_only(address: Any) -> Delivery | None:
    return None


async def test_mongodb_stopped_under_load_loses_nothing_and_stores_everything(
        make_engine: Callable[..., Any], own_mongo: ServerProcess) -> None:
    connection = MongoConnection(own_mongo.url, database="outage", timeout_ms=400)
    try:
        kit: EngineKit = await make_engine(tenant("acme", limits=LIMITS),
                                           database=connection,
                                           settings=EngineSettings(lock_wait_s=30))
        recovery = Recovery(kit.engine, _stored_only, interval_s=0.2)
        writer = asyncio.create_task(recovery.run([]))
        channel = MemoryChannel(kit.engine, "acme")
        outage, tally = asyncio.Event(), Tally()

        async def chaos() -> None:
            await asyncio.sleep(1.0)
            own_mongo.pause()
            outage.set()
            await asyncio.sleep(OUTAGE_S)
            own_mongo.resume()
            outage.clear()

        chaos_task = asyncio.create_task(chaos())
        sent = await steady_load(channel, OUTAGE_S + 3.0, outage, tally)
        await chaos_task
        deadline = time.monotonic() + 30
        while kit.deps.journal.pending():
            assert time.monotonic() < deadline, "journaled turns were never written back"
            await asyncio.sleep(0.1)
        writer.cancel()
        stored = await stored_questions(kit, sent)
        report("mongodb_stopped", tally, stored)

        assert tally.during_outage >= RATE_PER_S * OUTAGE_S * 0.5, tally
        assert tally.answered + tally.apologised == tally.sent, tally
        assert tally.answered == tally.sent, tally
        assert stored == tally.sent, "answered but not stored"
    finally:
        await connection.close()


# -- policies while Redis is down ------------------------------------------------------

def unreachable_state() -> ResilientState:
    """A process whose Redis is gone (nothing listens on the port), as after a kill."""
    from tests.servers import free_port
    return ResilientState(RedisState(f"redis://127.0.0.1:{free_port()}/0", timeout_s=0.3),
                          errors=(RedisError, OSError), retry_after_s=60)


@pytest.mark.parametrize(("policy", "outcome"), [("local", "answered"),
                                                 ("open", "answered"),
                                                 ("closed", "rate_limited")])
async def test_rate_limits_follow_the_tenant_policy_while_redis_is_down(
        make_engine: Callable[..., Any], policy: str, outcome: str) -> None:
    kit: EngineKit = await make_engine(tenant("acme", limits={"when_state_down": policy}))
    from dataclasses import replace

    from core.engine import Engine
    down = unreachable_state()
    engine = Engine(replace(kit.deps, state=down))
    try:
        delivery = await MemoryChannel(engine, "acme").send("hello", thread=f"p-{policy}")
    finally:
        await down.close()
    assert down.degraded and delivery.result.outcome == outcome
    if policy == "closed":
        assert delivery.reply is not None and "limits" in delivery.reply.text


async def test_a_redelivery_while_redis_is_down_is_dropped_by_its_stored_id(
        make_engine: Callable[..., Any]) -> None:
    kit: EngineKit = await make_engine(tenant("acme", limits=LIMITS))
    from dataclasses import replace

    from core.engine import Engine
    first = MemoryChannel(kit.engine, "acme")
    assert (await first.send("once", thread="dd", message_id="m-dd")).result.outcome == \
        "answered"
    # Another worker (its own memory, so its in-process dedupe never saw the message)
    # gets Slack's retry while Redis is down: the stored message id still stops it.
    down = unreachable_state()
    try:
        other = MemoryChannel(Engine(replace(kit.deps, state=down)), "acme")
        again = await other.send("once", thread="dd", message_id="m-dd")
    finally:
        await down.close()
    assert down.degraded and again.result.outcome == "duplicate"
