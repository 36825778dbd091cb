"""CPU per streamed answer in the `openai` client, four ways, against the OpenAI stand-in
running in another process (so its work is not counted): the SDK's typed stream or the
raw server-sent events Switchboard reads (`core/llm/openai_chat.py`), each over the
SDK's default HTTPX2 transport and over its aiohttp one.

    python -m benchmarks.llm_client [--requests 600] [--in-flight 20]

Writes benchmarks/results/llm_client.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import openai
from openai import AsyncOpenAI

from benchmarks.report import write_results

ROOT = Path(__file__).resolve().parent.parent
MESSAGES = [{"role": "system", "content": "Answer from the passages."},
            {"role": "user", "content": "What is the refund policy for order 12?"}]
STAND_IN = """
import asyncio
from tests.fakes.openai_server import FakeOpenAI, start_fake_openai
async def main():
    llm = FakeOpenAI(answer_prefix="Per [1], refunds are answered within a few business days")
    await start_fake_openai(llm)
    print(llm.url, flush=True)
    await asyncio.Event().wait()
asyncio.run(main())
"""

Kind = Callable[[AsyncOpenAI], Awaitable[int]]


def _params() -> dict[str, Any]:
    return {"model": "gpt-4o-mini", "messages": [], "stream": True,
            "stream_options": {"include_usage": True}, "extra_body": {"messages": MESSAGES}}


async def typed(client: AsyncOpenAI) -> int:
    tokens = 0
    stream = await client.chat.completions.create(**_params())
    async for chunk in stream:
        tokens += sum(1 for choice in chunk.choices if choice.delta.content)
    return tokens


async def raw(client: AsyncOpenAI) -> int:
    tokens = 0
    async with client.chat.completions.with_streaming_response.create(**_params()) as response:
        async for line in response.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            tokens += sum(1 for c in chunk.get("choices") or () if c["delta"].get("content"))
    return tokens


async def measure(url: str, kind: Kind, aiohttp: bool, requests: int, in_flight: int
                  ) -> dict[str, Any]:
    client = AsyncOpenAI(api_key="sk-bench", base_url=url, max_retries=0,
                         http_client=openai.DefaultAioHttpClient() if aiohttp else None)
    await asyncio.gather(*(kind(client) for _ in range(in_flight)))  # warm the pool
    gate = asyncio.Semaphore(in_flight)

    async def one() -> int:
        async with gate:
            return await kind(client)

    cpu, wall = time.process_time(), time.perf_counter()
    tokens = await asyncio.gather(*(one() for _ in range(requests)))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    await client.close()
    return {"cpu_ms_per_answer": round(cpu / requests * 1000, 3),
            "answers_per_s": round(requests / wall, 1), "tokens_per_answer": tokens[0]}


async def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=600)
    parser.add_argument("--in-flight", type=int, default=20)
    args = parser.parse_args()
    stand_in = await asyncio.create_subprocess_exec(
        sys.executable, "-c", STAND_IN, cwd=ROOT, stdout=asyncio.subprocess.PIPE)
    assert stand_in.stdout is not None
    url = (await stand_in.stdout.readline()).decode().strip()
    rows: dict[str, Any] = {}
    try:
        for name, kind, aiohttp in (("typed stream, httpx2 (SDK default)", typed, False),
                                    ("raw events, httpx2", raw, False),
                                    ("typed stream, aiohttp", typed, True),
                                    ("raw events, aiohttp (Switchboard)", raw, True)):
            rows[name] = await measure(url, kind, aiohttp, args.requests, args.in_flight)
            print(f"{name:38} {rows[name]['cpu_ms_per_answer']:6.2f} ms CPU an answer  "
                  f"{rows[name]['answers_per_s']:7.1f} answers/s  "
                  f"({rows[name]['tokens_per_answer']} tokens)", flush=True)
    finally:
        stand_in.terminate()
        await stand_in.wait()
    write_results("llm_client", {"when": datetime.now(UTC).isoformat(timespec="seconds"),
                                 "requests": args.requests, "in_flight": args.in_flight,
                                 "clients": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
