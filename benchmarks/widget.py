"""Widget conversations over the real transport: many WebSocket visitors at once against
`switchboard serve` with an instant OpenAI-compatible stand-in, beside a bare aiohttp
WebSocket server that answers every message at once, measured in the same run.

Each connection says hello, then asks its questions one after another; the figures are
turns per second and the time from sending a message to its first streamed delta. The
tenant has documents (``--documents``, 0 for none), so every turn embeds its question
and runs the hybrid search: full RAG turns. No question repeats, so none is answered
from the answer cache.

    python -m benchmarks.widget [--connections 200] [--turns 5] [--documents 24]

Writes benchmarks/results/widget.json.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

from benchmarks.report import percentile, start_baseline, write_results
from tests.fakes.openai_server import FakeOpenAI, start_fake_openai
from tests.servers import free_port, start_switchboard

ROOT = Path(__file__).resolve().parent.parent
ORIGIN = "http://bench.example"
API_KEY = "bench-api-key-0123456789abcdef"
TOPICS = ("refunds", "shipping", "passwords", "holidays", "pricing", "warranty")


async def visitor(session: aiohttp.ClientSession, url: str, turns: int,
                  first_delta: list[float], errors: list[str]) -> int:
    done = 0
    async with session.ws_connect(url, headers={"Origin": ORIGIN}) as ws:
        await ws.send_json({"type": "hello", "token": "", "after": None})
        welcome = await ws.receive_json(timeout=30)
        if welcome.get("type") != "welcome":
            errors.append(str(welcome))
            return 0
        for n in range(turns):
            client_id = uuid.uuid4().hex[:16]
            sent = time.perf_counter()
            question = f"What is the {TOPICS[n % len(TOPICS)]} policy for order {client_id}?"
            await ws.send_json({"type": "message", "text": question,
                                "client_id": client_id})
            got_delta = False
            while True:
                event = await ws.receive_json(timeout=60)
                if event.get("client_id") != client_id:
                    continue
                if event["type"] == "delta" and not got_delta:
                    first_delta.append(time.perf_counter() - sent)
                    got_delta = True
                elif event["type"] == "reply":
                    done += 1
                    break
                elif event["type"] == "error":
                    errors.append(event.get("code", "error"))
                    break
    return done


async def load(url: str, connections: int, turns: int) -> dict[str, Any]:
    first_delta: list[float] = []
    errors: list[str] = []
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        started = time.perf_counter()
        done = await asyncio.gather(*(visitor(session, url, turns, first_delta, errors)
                                      for _ in range(connections)))
        elapsed = time.perf_counter() - started
    return {"connections": connections, "turns": sum(done),
            "turns_per_s": round(sum(done) / elapsed, 1),
            "first_delta_p50_ms": round(percentile(first_delta, 50) * 1000, 2),
            "first_delta_p99_ms": round(percentile(first_delta, 99) * 1000, 2),
            "errors": len(errors)}


async def add_documents(base: str, count: int) -> None:
    """``count`` short policy documents through the admin API, so that retrieval finds
    passages for every question."""
    documents = [{"title": f"{TOPICS[n % len(TOPICS)].title()} policy {n}",
                  "source": f"policy-{n}",
                  "text": f"# {TOPICS[n % len(TOPICS)].title()} {n}\n\nThe "
                          f"{TOPICS[n % len(TOPICS)]} policy, part {n}: requests are answered "
                          f"within {n % 5 + 2} business days by the support team."}
                 for n in range(count)]
    async with aiohttp.ClientSession() as http, http.post(
            f"{base}/api/v1/tenants/bench/documents", json={"documents": documents},
            headers={"Authorization": f"Bearer {API_KEY}"}) as response:
        if response.status != 200:
            raise RuntimeError(f"ingest failed: {response.status} {await response.text()}")


async def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--connections", type=int, default=200)
    parser.add_argument("--turns", type=int, default=5)
    parser.add_argument("--documents", type=int, default=24,
                        help="documents in the tenant's knowledge (0: no retrieval)")
    args = parser.parse_args()
    llm = FakeOpenAI(answer_prefix="Per [1], the policy is")
    _, llm_runner = await start_fake_openai(llm)
    home = Path(tempfile.mkdtemp(prefix="sb-widget-bench-"))
    (home / "tenants").mkdir()
    (home / "tenants" / "bench.toml").write_text(
        'id = "bench"\nname = "Bench"\n[limits]\nuser_per_minute = 100000\n'
        'tenant_per_minute = 1000000\n[knowledge]\nscore_threshold = 0.0\n'
        '[api]\nkey_env = "BENCH_API_KEY"\n[widget]\npublic_key = "pk_bench_widget"\n'
        f'allowed_origins = ["{ORIGIN}"]\nip_per_minute = 1000000\n')
    env = {"PATH": "/usr/bin:/bin", "SWITCHBOARD_TENANTS_DIR": str(home / "tenants"),
           "SWITCHBOARD_DATA_DIR": str(home / "var"), "OPENAI_API_KEY": "sk-bench",
           "OPENAI_BASE_URL": llm.url, "LOG_LEVEL": "WARNING", "HF_HUB_OFFLINE": "1",
           "BENCH_API_KEY": API_KEY}
    base, serve = await asyncio.to_thread(start_switchboard, env, ROOT, home / "serve.log")
    port = free_port()
    bare = await start_baseline("benchmarks.bare_ws", port)
    ws_base = base.replace("http", "ws", 1)
    try:
        if args.documents:
            await add_documents(base, args.documents)
        await load(f"{ws_base}/widget/v1/ws?key=pk_bench_widget", 10, 2)  # warm-up
        baseline = await load(f"ws://127.0.0.1:{port}/widget/v1/ws", args.connections,
                              args.turns)
        switchboard = await load(f"{ws_base}/widget/v1/ws?key=pk_bench_widget",
                                 args.connections, args.turns)
    finally:
        serve.terminate()
        bare.terminate()
        await asyncio.to_thread(serve.wait, 30)
        await bare.wait()
        await llm_runner.cleanup()
        shutil.rmtree(home, ignore_errors=True)
    results: dict[str, Any] = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "connections": args.connections, "turns_per_connection": args.turns,
        "documents": args.documents,
        "bare_websocket": baseline, "switchboard": switchboard,
        "first_delta_p99_ratio": round(switchboard["first_delta_p99_ms"]
                                       / baseline["first_delta_p99_ms"], 1),
        "turns_per_s_ratio": round(switchboard["turns_per_s"] / baseline["turns_per_s"], 3)}
    for name, figures in (("bare websocket", baseline), ("switchboard", switchboard)):
        print(f"{name:15} {figures['turns_per_s']:8} turns/s   first delta p50 "
              f"{figures['first_delta_p50_ms']} ms, p99 {figures['first_delta_p99_ms']} ms   "
              f"({figures['turns']} turns, {figures['errors']} errors)")
    print(f"ratios: turns/s {results['turns_per_s_ratio']}, "
          f"first-delta p99 {results['first_delta_p99_ratio']}x")
    write_results("widget", results)
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
