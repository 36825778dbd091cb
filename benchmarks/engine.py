"""Engine throughput and latency through the in-memory channel with an instant LLM.

Runs the full pipeline (tenant, dedupe, limits, lock, session load, answer, persist,
usage) at 1 and 32 conversations in flight, on (a) the embedded stack (nx-27017 +
in-process state) and (b) redis-server + nx-27017. Beside each, a baseline measured in
the same run: the bare storage round trips a turn needs (one history query, one
two-document insert) with no engine at all, so machine noise shows up in both.

    python -m benchmarks.engine [--turns 600] [--per-conversation 40]

Writes benchmarks/results/engine.json.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from adapters.memory import MemoryChannel
from benchmarks.report import percentile, write_results
from bots.embedded_mongo import EmbeddedMongo
from core.commands.builtins import builtin_commands
from core.engine import Engine, EngineDeps
from core.knowledge.base import NoKnowledge
from core.llm.base import Answer, Answerer, AnswerRequest, DeltaCallback, ToolCall
from core.sessions.cached import CachedSessionStore
from core.sessions.models import TurnUsage
from core.state.base import SharedState
from core.state.memory import MemoryState
from core.state.redis import RedisState
from core.stores.mongo_audit import MongoAuditLog
from core.stores.mongo_client import MongoConnection
from core.stores.mongo_sessions import MongoSessionStore
from core.stores.mongo_usage import MongoUsageStore
from core.tenants.models import TenantConfig
from core.tenants.registry import TenantRegistry
from core.usage import UsageLedger
from tests.servers import start_redis


class InstantAnswerer:
    """Answers at once, in three deltas, with token usage (so budgets are exercised)."""

    name = "instant benchmark answerer"
    metered = True
    supports_tools = False

    async def answer(self, request: AnswerRequest, on_delta: DeltaCallback) -> Answer:
        for piece in ("Instant ", "answer to: ", request.question):
            await on_delta(piece)
        return Answer(f"Instant answer to: {request.question}",
                      TurnUsage("bench", 40 + 10 * len(request.history), 8, 0.0))

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        return None



class InstantToolAnswerer(InstantAnswerer):
    """Calls the calculator ``steps`` times, then answers: the agent loop with a model
    that costs nothing, so what is measured is the loop's own overhead per step."""

    supports_tools = True

    def __init__(self, steps: int) -> None:
        self.steps = steps

    async def answer(self, request: AnswerRequest, on_delta: DeltaCallback) -> Answer:
        if len(request.steps) < self.steps:
            return Answer("", TurnUsage("bench", 40, 8, 0.0), tool_calls=(ToolCall(
                f"call{len(request.steps)}", "calculator", '{"expression": "6 * 7"}'),))
        return await super().answer(request, on_delta)


async def measure(conversations: int, per_conversation: int,
                  turn: Callable[[int, int], Awaitable[None]]) -> dict[str, float]:
    latencies: list[float] = []

    async def run(conv: int) -> None:
        for n in range(per_conversation):
            t0 = time.perf_counter()
            await turn(conv, n)
            latencies.append(time.perf_counter() - t0)

    started = time.perf_counter()
    await asyncio.gather(*(run(c) for c in range(conversations)))
    elapsed = time.perf_counter() - started
    return {"turns": len(latencies), "turns_per_s": round(len(latencies) / elapsed, 1),
            "p50_ms": round(percentile(latencies, 50) * 1000, 3),
            "p99_ms": round(percentile(latencies, 99) * 1000, 3)}


async def engine_run(mongo: MongoConnection, state: SharedState, label: str,
                     conversations: int, per_conversation: int,
                     answerer: Answerer | None = None) -> dict[str, float]:
    mongo_sessions = MongoSessionStore(mongo.db)
    await mongo_sessions.ensure_indexes()
    sessions = CachedSessionStore(mongo_sessions, state)
    audit = MongoAuditLog(mongo.db)
    usage = UsageLedger(MongoUsageStore(mongo.db), state)
    usage.start()
    tenant = TenantConfig.model_validate({
        "id": "bench", "name": "Bench",
        "limits": {"user_per_minute": 1_000_000, "tenant_per_minute": 1_000_000},
        "llm": {"monthly_token_budget": 10**12}})
    engine = Engine(EngineDeps(
        tenants=TenantRegistry.from_configs(tenant), state=state, sessions=sessions,
        usage=usage, audit=audit, answerer=answerer or InstantAnswerer(), retriever=NoKnowledge(),
        commands=builtin_commands()))
    channel = MemoryChannel(engine, "bench")

    async def turn(conv: int, n: int) -> None:
        delivery = await channel.send(f"question {n}", thread=f"{label}-{conv}",
                                      user=f"user{conv}", message_id=f"{label}-{conv}-{n}")
        if delivery.result.outcome != "answered":
            raise RuntimeError(f"turn ended {delivery.result.outcome}")

    try:
        return await measure(conversations, per_conversation, turn)
    finally:
        await usage.close()


async def baseline_run(mongo: MongoConnection, label: str, conversations: int,
                       per_conversation: int) -> dict[str, float]:
    collection = mongo.db["baseline"]
    await collection.create_index([("tenant", 1), ("channel", 1), ("thread", 1), ("at", -1)])

    async def turn(conv: int, n: int) -> None:
        query = {"tenant": "bench", "channel": "memory", "thread": f"{label}-{conv}"}
        await collection.find(query).sort("at", -1).limit(20).to_list()
        now = datetime.now(UTC)
        await collection.insert_many([{**query, "at": now, "text": f"q{n}"},
                                      {**query, "at": now, "text": f"a{n}"}])

    return await measure(conversations, per_conversation, turn)


async def stack_results(mongo: MongoConnection, state_factory: Callable[[], SharedState],
                        stack: str, args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    await engine_run(mongo, state_factory(), f"{stack}-warm", 4, 20)
    for conversations, per in ((1, args.turns), (32, args.per_conversation)):
        state = state_factory()
        try:
            engine = await engine_run(mongo, state, f"{stack}-{conversations}",
                                      conversations, per)
        finally:
            await state.close()
        baseline = await baseline_run(mongo, f"{stack}-{conversations}", conversations, per)
        out[f"{conversations}_in_flight"] = {
            "engine": engine, "storage_baseline": baseline,
            "engine_vs_baseline_throughput": round(engine["turns_per_s"]
                                                   / baseline["turns_per_s"], 3)}
        print(f"{stack:>9} | {conversations:>2} in flight | engine {engine['turns_per_s']:>7} "
              f"turns/s p50 {engine['p50_ms']:>7} ms p99 {engine['p99_ms']:>7} ms | "
              f"storage baseline {baseline['turns_per_s']:>7} turns/s "
              f"p99 {baseline['p99_ms']:>7} ms", flush=True)
    return out


async def agent_loop(uri: str, args: argparse.Namespace) -> dict[str, Any]:
    """Turns whose instant model calls a tool 0, 1 and 3 times, one in flight, on the
    embedded stack: the difference is the loop's cost per step (a model step, a tool
    call through the executor with its audit write, two turn events)."""
    mongo = MongoConnection(uri, database="bench_agent")
    out: dict[str, Any] = {}
    try:
        await engine_run(mongo, MemoryState(), "agent-warm", 2, 20, InstantToolAnswerer(1))
        for steps in (0, 1, 3):
            out[f"{steps}_tool_steps"] = await engine_run(
                mongo, MemoryState(), f"agent-{steps}", 1, args.turns // 2,
                InstantToolAnswerer(steps))
    finally:
        await mongo.close()
    base, three = out["0_tool_steps"]["p50_ms"], out["3_tool_steps"]["p50_ms"]
    out["per_step_p50_ms"] = round((three - base) / 3, 3)
    print(f"agent loop | p50 per turn: 0 steps {base} ms, 1 step "
          f"{out['1_tool_steps']['p50_ms']} ms, 3 steps {three} ms | "
          f"per step {out['per_step_p50_ms']} ms", flush=True)
    return out


async def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--turns", type=int, default=600, help="turns at 1 in flight")
    parser.add_argument("--per-conversation", type=int, default=40,
                        help="turns per conversation at 32 in flight")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="sb-bench-"))
    embedded = EmbeddedMongo(workdir / "mongo")
    uri = await embedded.start()
    mongo = MongoConnection(uri, database="bench")
    redis = start_redis()
    results: dict[str, Any] = {"machine": {"python": platform.python_version(),
                                           "cpus": os.cpu_count()},
                               "when": datetime.now(UTC).isoformat(timespec="seconds")}
    try:
        results["embedded"] = await stack_results(mongo, MemoryState, "embedded", args)
        results["redis+nx"] = await stack_results(
            mongo, lambda: RedisState(redis.url, prefix="bench:"), "redis+nx", args)
        results["agent_loop"] = await agent_loop(uri, args)
    finally:
        await mongo.close()
        await embedded.stop()
        redis.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    one = results["embedded"]["1_in_flight"]["engine"]
    many = results["embedded"]["32_in_flight"]["engine"]
    results["targets"] = {"p99_ms_at_1_under_20": one["p99_ms"] < 20,
                          "turns_per_s_at_32_at_least_300": many["turns_per_s"] >= 300}
    path = write_results("engine", results)
    print(f"targets: {results['targets']}  ->  {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
