"""Slack ack latency: 1,000 signed event requests at 50 in flight against `switchboard
serve`, beside a bare slack-bolt app that only acknowledges, measured in the same run.

Every request is a distinct `app_mention` for a bound workspace, so `switchboard serve`
also runs each turn (engine, storage, replies to a local Slack Web API stand-in) after
acknowledging it; the figure is the time to the HTTP response Slack waits for (3 s limit).

    python -m benchmarks.slack_ack [--requests 1000] [--concurrency 50]

Writes benchmarks/results/slack_ack.json.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import shutil
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

from benchmarks.report import percentile, start_baseline, write_results
from tests.fakes.slack_api import FakeSlack, start_fake_slack
from tests.servers import free_port, start_switchboard

ROOT = Path(__file__).resolve().parent.parent
SECRET = "bench-signing-secret"



LABELS = {"w1": 1, "w2": 2, "b": 3, "s": 4}


def signed(n: int, label: str) -> tuple[bytes, dict[str, str]]:
    ts = f"17637{n:05d}.{LABELS[label]:06d}"  # a real Slack ts: seconds.micro
    body = json.dumps({"type": "event_callback", "team_id": "T0BENCH", "event_id": f"Ev{n}",
                       "event": {"type": "app_mention", "user": f"U{n % 50}",
                                 "text": "<@U0BOT> hello", "ts": ts,
                                 "channel": "C0BENCH"}}).encode()
    stamp = str(int(time.time()))
    digest = hmac.new(SECRET.encode(), f"v0:{stamp}:".encode() + body, hashlib.sha256)
    return body, {"Content-Type": "application/json", "X-Slack-Request-Timestamp": stamp,
                  "X-Slack-Signature": f"v0={digest.hexdigest()}"}


async def load(url: str, requests: int, concurrency: int, label: str) -> dict[str, float]:
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    queue: asyncio.Queue[int] = asyncio.Queue()
    for n in range(requests):
        queue.put_nowait(n)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as s:

        async def worker() -> None:
            while not queue.empty():
                n = queue.get_nowait()
                body, headers = signed(n, label)
                t0 = time.perf_counter()
                async with s.post(url, data=body, headers=headers) as response:
                    await response.read()
                    statuses[response.status] = statuses.get(response.status, 0) + 1
                latencies.append(time.perf_counter() - t0)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return {"requests": len(latencies), "per_s": round(len(latencies) / elapsed, 1),
            "p50_ms": round(percentile(latencies, 50) * 1000, 2),
            "p99_ms": round(percentile(latencies, 99) * 1000, 2),
            "non_200": sum(v for k, v in statuses.items() if k != 200)}


def answered(fake: FakeSlack) -> set[str]:
    """Threads that got a reply (the placeholder or the final message)."""
    return {str(c.payload.get("thread_ts")) for c in fake.of("chat.postMessage")}


async def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=50)
    args = parser.parse_args()
    fake = FakeSlack()
    runner = await start_fake_slack(fake)
    home = Path(tempfile.mkdtemp(prefix="sb-slack-bench-"))
    (home / "tenants").mkdir()
    (home / "tenants" / "bench.toml").write_text(
        'id = "bench"\nname = "Bench"\n[limits]\nuser_per_minute = 100000\n'
        'tenant_per_minute = 1000000\n[slack]\nteam_ids = ["T0BENCH"]\n'
        'bot_token_env = "BENCH_SLACK_BOT_TOKEN"\n')
    env = {"PATH": "/usr/bin:/bin", "SWITCHBOARD_TENANTS_DIR": str(home / "tenants"),
           "SWITCHBOARD_DATA_DIR": str(home / "var"), "SLACK_SIGNING_SECRET": SECRET,
           "SLACK_API_URL": fake.url, "BENCH_SLACK_BOT_TOKEN": "xoxb-bench",
           "LOG_LEVEL": "WARNING"}
    base, serve = await asyncio.to_thread(start_switchboard, env, ROOT, home / "serve.log")
    port = free_port()
    bare = await start_baseline("benchmarks.bare_bolt", port, SECRET)
    try:
        await load(f"http://127.0.0.1:{port}/slack/events", 100, 10, "w1")
        await load(f"{base}/slack/events", 100, 10, "w2")
        baseline = await load(f"http://127.0.0.1:{port}/slack/events", args.requests,
                              args.concurrency, "b")
        switchboard = await load(f"{base}/slack/events", args.requests, args.concurrency, "s")
        # The turns run after the acks: wait for their answers, so the run also shows that
        # every acknowledged event was answered (and none twice).
        expected = args.requests + 100
        for _ in range(600):
            if len(answered(fake)) >= expected:
                break
            await asyncio.sleep(0.1)
        switchboard["answered"] = len(answered(fake))
        switchboard["answered_expected"] = expected
    finally:
        serve.terminate()
        bare.terminate()
        await asyncio.to_thread(serve.wait, 30)
        await bare.wait()
        await runner.cleanup()
        shutil.rmtree(home, ignore_errors=True)
    results: dict[str, Any] = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "requests": args.requests, "concurrency": args.concurrency,
        "bare_bolt": baseline, "switchboard": switchboard,
        "p99_ratio": round(switchboard["p99_ms"] / baseline["p99_ms"], 2),
        "target_p99_at_most_100ms": switchboard["p99_ms"] <= 100}
    print(f"bare bolt:   p50 {baseline['p50_ms']} ms, p99 {baseline['p99_ms']} ms")
    print(f"switchboard: p50 {switchboard['p50_ms']} ms, p99 {switchboard['p99_ms']} ms "
          f"(ratio {results['p99_ratio']}; non-200: {switchboard['non_200']}; answered "
          f"{switchboard['answered']} of {switchboard['answered_expected']})")
    write_results("slack_ack", results)
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
