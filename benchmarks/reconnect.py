"""Forced reconnects between two web workers on Redis Streams: nothing lost, nothing twice.

Two `switchboard serve` processes share one Redis and one MongoDB-wire server. Widget
visitors ask questions whose answers stream (the stand-in model pauses between words),
and every few events their connection is cut and reopened on the *other* worker with
the last sequence number they saw. Each conversation's events are numbered 1, 2, 3 …,
so a gap is a lost event and a number seen twice is a repeat; at every reply the
streamed deltas must equal the reply's text. Also measured: the time from starting a
reconnect to the welcome (the resume).

    python -m benchmarks.reconnect [--visitors 10] [--reconnects 100]

Writes benchmarks/results/reconnect.json.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

from benchmarks.report import percentile, write_results
from bots.embedded_mongo import EmbeddedMongo
from tests.fakes.openai_server import FakeOpenAI, start_fake_openai
from tests.servers import start_redis, start_switchboard

ROOT = Path(__file__).resolve().parent.parent
ORIGIN = "http://reconnect.example"
KEY = "pk_reconnect"


class Visitor:
    def __init__(self, workers: list[str], session: aiohttp.ClientSession,
                 rng: random.Random) -> None:
        self.workers, self.session, self.rng = workers, session, rng
        self.token, self.last = "", None
        self.lost = self.repeated = self.mismatched = self.replies = 0
        self.resume_s: list[float] = []
        self.pending: str | None = None
        self.text = ""

    async def connect(self, worker: str) -> aiohttp.ClientWebSocketResponse:
        started = time.perf_counter()
        ws = await self.session.ws_connect(
            f"{worker.replace('http', 'ws', 1)}/widget/v1/ws?key={KEY}",
            headers={"Origin": ORIGIN})
        await ws.send_json({"type": "hello", "token": self.token, "after": self.last})
        welcome = await ws.receive_json(timeout=30)
        assert welcome["type"] == "welcome", welcome
        self.token = welcome["token"]
        if self.last is None:
            self.last = welcome["seq"]
        else:
            self.resume_s.append(time.perf_counter() - started)
        return ws

    def take(self, event: dict[str, Any]) -> None:
        seq = event.get("seq")
        if seq is None or self.last is None:
            return
        if seq <= self.last:
            self.repeated += 1
            return
        self.lost += seq - self.last - 1
        self.last = seq
        if event.get("client_id") != self.pending:
            return
        if event["type"] == "delta":
            self.text += event["text"]
        elif event["type"] == "reply":
            self.replies += 1
            self.mismatched += self.text != event["text"]
            self.pending, self.text = None, ""

    async def run(self, reconnects: int) -> None:
        turn = 0
        for n in range(reconnects + 1):
            ws = await self.connect(self.workers[n % 2])
            if self.pending is None:
                self.pending = uuid.uuid4().hex[:16]
                turn += 1
                await ws.send_json({"type": "message", "client_id": self.pending,
                                    "text": f"question {turn}: tell me about parcels"})
            budget = self.rng.randint(1, 6)  # events to read before the cut
            try:
                while budget > 0:
                    event = await ws.receive_json(timeout=30)
                    self.take(event)
                    budget -= 1
                    if self.pending is None:
                        break
            finally:
                await ws.close()
        # Finish the last turn on a final connection.
        if self.pending is not None:
            ws = await self.connect(self.workers[0])
            while self.pending is not None:
                self.take(await ws.receive_json(timeout=30))
            await ws.close()


async def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--visitors", type=int, default=10)
    parser.add_argument("--reconnects", type=int, default=100, help="per visitor")
    args = parser.parse_args()
    llm = FakeOpenAI(chunk_delay_s=0.02)
    _, llm_runner = await start_fake_openai(llm)
    home = Path(tempfile.mkdtemp(prefix="sb-reconnect-"))
    mongo = EmbeddedMongo(home / "mongo")
    uri = await mongo.start()
    redis = start_redis()
    (home / "tenants").mkdir()
    (home / "tenants" / "hop.toml").write_text(
        'id = "hop"\nname = "Hop"\n[limits]\nuser_per_minute = 100000\n'
        f'tenant_per_minute = 1000000\n[widget]\npublic_key = "{KEY}"\n'
        f'allowed_origins = ["{ORIGIN}"]\nip_per_minute = 1000000\n')
    env = {**os.environ, "PATH": "/usr/bin:/bin", "SWITCHBOARD_TENANTS_DIR":
           str(home / "tenants"), "REDIS_URL": redis.url, "MONGODB_URI": uri,
           "OPENAI_API_KEY": "sk-reconnect", "OPENAI_BASE_URL": llm.url,
           "LOG_LEVEL": "WARNING", "HF_HUB_OFFLINE": "1",
           "SWITCHBOARD_WIDGET_KEY": "reconnect-benchmark-widget-key"}
    started = [await asyncio.to_thread(
        start_switchboard, {**env, "SWITCHBOARD_DATA_DIR": str(home / f"var{n}"),
                            "SWITCHBOARD_WORKER": str(n)}, ROOT, home / f"serve{n}.log")
        for n in range(2)]
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
            visitors = [Visitor([b for b, _ in started], http, random.Random(i))
                        for i in range(args.visitors)]
            t0 = time.perf_counter()
            await asyncio.gather(*(v.run(args.reconnects) for v in visitors))
            elapsed = time.perf_counter() - t0
    finally:
        for _, process in started:
            process.terminate()
        for _, process in started:
            await asyncio.to_thread(process.wait, 30)
        redis.stop()
        await mongo.stop()
        await llm_runner.cleanup()
        shutil.rmtree(home, ignore_errors=True)
    resumes = [s for v in visitors for s in v.resume_s]
    results = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "visitors": args.visitors, "reconnects": len(resumes),
        "replies": sum(v.replies for v in visitors),
        "events_lost": sum(v.lost for v in visitors),
        "events_repeated": sum(v.repeated for v in visitors),
        "replies_not_matching_their_deltas": sum(v.mismatched for v in visitors),
        "resume_ms": {"p50": round(percentile(resumes, 50) * 1000, 1),
                      "p99": round(percentile(resumes, 99) * 1000, 1),
                      "max": round(max(resumes) * 1000, 1)},
        "seconds": round(elapsed, 1)}
    print(f"{results['reconnects']} reconnects to the other worker, {results['replies']} "
          f"replies: {results['events_lost']} events lost, {results['events_repeated']} "
          f"repeated, {results['replies_not_matching_their_deltas']} replies unlike their "
          f"deltas; resume p50 {results['resume_ms']['p50']} ms, p99 "
          f"{results['resume_ms']['p99']} ms, max {results['resume_ms']['max']} ms")
    print(f"-> {write_results('reconnect', results)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
