"""Open-loop load across tenants and channels, against one `switchboard serve`.

Questions arrive at a fixed rate with Poisson gaps, whether or not earlier ones were
answered (unlike ``benchmarks.widget``, whose visitors wait for each answer, so that a
slow server is never offered more than it can take). Each arrival picks one of
``--tenants`` tenants and a channel: a widget visitor (WebSocket; tabs stay connected,
and a tab asks again only once its last answer is complete) or a Slack mention (a
signed Events API POST; its first delta is the first message the bot posts in the
thread). Every tenant has documents, so every turn embeds the question and searches; no
question repeats, so none is served from the answer cache.
The stand-in model either answers at once or streams like a hosted model (first token
after ``--ttft-ms``, then ``--tokens-per-s``).

For each rate it reports the time from the question to the first streamed text (p50,
p95, p99; also per channel), the time to the full answer, errors, and whether the rate
is sustainable: no errors, and p99 first delta under 200 ms beyond the model's own time
to first token. The largest sustainable rate is the process's capacity for that model.

Then, DS-4 style, 10, 50 and 100 users per channel each ask again as soon as they are
answered (a closed loop, with the streaming model).

    python -m benchmarks.load [--rates 10,20,40,80,120] [--duration 15] [--tenants 10]
                              [--users 10,50,100]

Writes benchmarks/results/load.json.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import random
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from benchmarks.report import percentile, write_results
from tests.fakes.openai_server import FakeOpenAI, start_fake_openai
from tests.fakes.slack_api import FakeSlack, start_fake_slack
from tests.servers import start_switchboard

ROOT = Path(__file__).resolve().parent.parent
ORIGIN = "http://load.example"
SECRET = "load-test-signing-secret"
TOPICS = ("refunds", "shipping", "passwords", "holidays", "pricing", "warranty")
SUSTAINABLE_P99_MS = 200.0


class TimedSlack(FakeSlack):
    """The Slack stand-in, noting when each thread got its first post (the first delta
    or placeholder) and its final reply (the message with Block Kit blocks)."""

    first_post: dict[str, float]
    final_post: dict[str, float]
    thread_of: dict[str, str]

    async def handle(self, request: web.Request) -> web.Response:
        response = await super().handle(request)
        method = request.match_info["method"]
        if method not in ("chat.postMessage", "chat.update") or not self.calls:
            return response
        payload, now = self.calls[-1].payload, time.perf_counter()
        if method == "chat.postMessage":
            thread = str(payload.get("thread_ts", ""))
            self.first_post.setdefault(thread, now)
            self.thread_of[str(json.loads(response.text or "{}").get("ts", ""))] = thread
        else:
            thread = self.thread_of.get(str(payload.get("ts", "")), "")
        if payload.get("blocks") and thread:
            self.final_post.setdefault(thread, now)
        return response


@dataclass(slots=True)
class Tally:
    first: list[float] = field(default_factory=list)
    full: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    offered: int = 0
    slack_first: list[float] = field(default_factory=list)
    widget_first: list[float] = field(default_factory=list)


class Tab:
    """One widget visitor: a connected WebSocket asking one question at a time."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.busy = False
        self.waiting: dict[str, tuple[float, asyncio.Future[None]]] = {}
        self.reader = asyncio.create_task(self._read())
        self.tally: Tally | None = None

    async def _read(self) -> None:
        firsts: set[str] = set()
        async for raw in self.ws:
            event = json.loads(raw.data)
            client_id = event.get("client_id", "")
            if client_id not in self.waiting or self.tally is None:
                continue
            sent, done = self.waiting[client_id]
            if event["type"] == "delta" and client_id not in firsts:
                firsts.add(client_id)
                self.tally.first.append(time.perf_counter() - sent)
                self.tally.widget_first.append(time.perf_counter() - sent)
            elif event["type"] == "reply":
                self.tally.full.append(time.perf_counter() - sent)
                if client_id not in firsts:
                    self.tally.first.append(time.perf_counter() - sent)
                done.set_result(None)
            elif event["type"] == "error":
                self.tally.errors.append(event.get("code", "error"))
                done.set_result(None)

    async def ask(self, text: str, tally: Tally) -> None:
        self.busy, self.tally = True, tally
        client_id = uuid.uuid4().hex[:16]
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waiting[client_id] = (time.perf_counter(), done)
        await self.ws.send_json({"type": "message", "text": text, "client_id": client_id})
        try:
            await asyncio.wait_for(done, 60)
        except TimeoutError:
            tally.errors.append("timeout")
        finally:
            self.waiting.pop(client_id, None)
            self.busy = False


class Load:
    def __init__(self, base: str, slack: TimedSlack, tenants: int,
                 session: aiohttp.ClientSession) -> None:
        self.base, self.slack, self.tenants, self.session = base, slack, tenants, session
        self.tabs: dict[int, list[Tab]] = {t: [] for t in range(tenants)}
        self.ts = iter(range(1, 10**9))

    async def tab(self, tenant: int) -> Tab:
        for tab in self.tabs[tenant]:
            if not tab.busy:
                return tab
        ws = await self.session.ws_connect(
            f"{self.base.replace('http', 'ws', 1)}/widget/v1/ws?key=pk_load_{tenant}",
            headers={"Origin": ORIGIN})
        await ws.send_json({"type": "hello", "after": None})
        welcome = await ws.receive_json(timeout=30)
        assert welcome["type"] == "welcome", welcome
        tab = Tab(ws)
        self.tabs[tenant].append(tab)
        return tab

    async def widget(self, tenant: int, question: str, tally: Tally) -> None:
        tab = await self.tab(tenant)
        await tab.ask(question, tally)

    async def slack_mention(self, tenant: int, question: str, tally: Tally) -> None:
        ts = f"1764100000.{next(self.ts):06d}"
        body = {"type": "event_callback", "team_id": f"T0LOAD{tenant}", "event_id": f"Ev{ts}",
                "event": {"type": "app_mention", "user": "U0LOAD", "ts": ts,
                          "channel": "C0LOAD", "text": f"<@U0BOT> {question}"}}
        raw = json.dumps(body).encode()
        stamp = str(int(time.time()))
        signature = hmac.new(SECRET.encode(), f"v0:{stamp}:".encode() + raw,
                             hashlib.sha256).hexdigest()
        sent = time.perf_counter()
        async with self.session.post(f"{self.base}/slack/events", data=raw, headers={
                "Content-Type": "application/json", "X-Slack-Request-Timestamp": stamp,
                "X-Slack-Signature": f"v0={signature}"}) as response:
            if response.status != 200:
                tally.errors.append(f"slack {response.status}")
                return
        deadline = sent + 60
        while time.perf_counter() < deadline:
            final = self.slack.final_post.get(ts)
            if final is not None:
                tally.first.append(self.slack.first_post.get(ts, final) - sent)
                tally.slack_first.append(tally.first[-1])
                tally.full.append(final - sent)
                return
            await asyncio.sleep(0.01)
        tally.errors.append("slack timeout")

    async def run(self, rate: float, duration: float, slack_share: float) -> Tally:
        tally = Tally()
        rng = random.Random(int(rate * 1000))
        tasks: list[asyncio.Task[None]] = []
        started = time.perf_counter()
        at = started
        while at - started < duration:
            at += rng.expovariate(rate)
            await asyncio.sleep(max(0.0, at - time.perf_counter()))
            tenant = rng.randrange(self.tenants)
            # Never the same question twice: the answer cache would skip the model.
            question = f"What is the policy on {rng.choice(TOPICS)} for order {tally.offered}?"
            tally.offered += 1
            asked = self.slack_mention if rng.random() < slack_share else self.widget
            tasks.append(asyncio.create_task(asked(tenant, question, tally)))
        await asyncio.gather(*tasks, return_exceptions=True)
        return tally


    async def users(self, count: int, channel: str, duration: float) -> tuple[Tally, float]:
        """``count`` users of one channel, each asking again as soon as answered (a
        closed loop, the DS-4 style figure); returns the tally and the elapsed time."""
        tally = Tally()
        rng = random.Random(count)
        asked = self.slack_mention if channel == "slack" else self.widget
        end = time.perf_counter() + duration

        async def user(n: int) -> None:
            tenant = n % self.tenants
            while time.perf_counter() < end:
                tally.offered += 1
                question = (f"What is the policy on {rng.choice(TOPICS)} for order "
                            f"{channel}-{count}-{n}-{tally.offered}?")
                await asked(tenant, question, tally)

        started = time.perf_counter()
        await asyncio.gather(*(user(n) for n in range(count)))
        return tally, time.perf_counter() - started


def summary(rate: float, tally: Tally, model_ttft_ms: float) -> dict[str, Any]:
    """One rate's figures. Sustainable: no errors, everything answered, and p99 first
    delta under 200 ms beyond the model's own time to first token."""
    def ms(values: list[float], q: float) -> float:
        return round(percentile(values, q) * 1000, 1) if values else 0.0
    return {"rate": rate, "offered": tally.offered, "answered": len(tally.full),
            "errors": len(tally.errors),
            "first_delta_ms": {"p50": ms(tally.first, 50), "p95": ms(tally.first, 95),
                               "p99": ms(tally.first, 99)},
            "full_answer_ms": {"p50": ms(tally.full, 50), "p95": ms(tally.full, 95),
                               "p99": ms(tally.full, 99)},
            "first_delta_ms_by_channel": {
                "widget": {"p50": ms(tally.widget_first, 50), "p95": ms(tally.widget_first, 95)},
                "slack": {"p50": ms(tally.slack_first, 50), "p95": ms(tally.slack_first, 95)}},
            "sustainable": not tally.errors and len(tally.full) == tally.offered
            and ms(tally.first, 99) - model_ttft_ms < SUSTAINABLE_P99_MS}


async def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rates", default="10,20,40,60,80,100,120")
    parser.add_argument("--duration", type=float, default=15.0)
    parser.add_argument("--tenants", type=int, default=10)
    parser.add_argument("--slack-share", type=float, default=0.3)
    parser.add_argument("--ttft-ms", type=float, default=300.0)
    parser.add_argument("--tokens-per-s", type=float, default=50.0)
    parser.add_argument("--models", default="instant,streaming")
    parser.add_argument("--users", default="10,50,100",
                        help="closed-loop users per channel (streaming model); empty: skip")
    parser.add_argument("--no-write", action="store_true",
                        help="print only (the test suite's smoke run)")
    args = parser.parse_args()

    llm = FakeOpenAI(answer_prefix="Per [1], the policy on")
    _, llm_runner = await start_fake_openai(llm)
    slack = TimedSlack()
    slack.first_post, slack.final_post, slack.thread_of = {}, {}, {}
    slack_runner = await start_fake_slack(slack)
    home = Path(tempfile.mkdtemp(prefix="sb-load-"))
    (home / "tenants").mkdir()
    env = {"PATH": "/usr/bin:/bin", "SWITCHBOARD_TENANTS_DIR": str(home / "tenants"),
           "SWITCHBOARD_DATA_DIR": str(home / "var"), "OPENAI_API_KEY": "sk-load",
           "OPENAI_BASE_URL": llm.url, "LOG_LEVEL": "WARNING", "HF_HUB_OFFLINE": "1",
           "SLACK_SIGNING_SECRET": SECRET, "SLACK_API_URL": slack.url}
    for t in range(args.tenants):
        (home / "tenants" / f"load{t}.toml").write_text(
            f'id = "load{t}"\nname = "Load {t}"\n[limits]\nuser_per_minute = 100000\n'
            'tenant_per_minute = 1000000\n[knowledge]\nscore_threshold = 0.0\n'
            f'[api]\nkey_env = "LOAD{t}_API_KEY"\n[slack]\nteam_ids = ["T0LOAD{t}"]\n'
            f'bot_token_env = "LOAD{t}_SLACK_TOKEN"\n[widget]\npublic_key = "pk_load_{t}"\n'
            f'allowed_origins = ["{ORIGIN}"]\nip_per_minute = 1000000\n')
        env[f"LOAD{t}_API_KEY"] = f"load-{t}-api-key-0123456789"
        env[f"LOAD{t}_SLACK_TOKEN"] = f"xoxb-load-{t}"
    base, serve = await asyncio.to_thread(start_switchboard, {**os.environ, **env}, ROOT,
                                          home / "serve.log")
    results: dict[str, Any] = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "setup": {"tenants": args.tenants, "duration_s": args.duration,
                  "slack_share": args.slack_share, "ttft_ms": args.ttft_ms,
                  "tokens_per_s": args.tokens_per_s, "cpus": os.cpu_count(),
                  "sustainable": f"p99 first delta < {SUSTAINABLE_P99_MS:.0f} ms, no errors"}}
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
            for t in range(args.tenants):
                documents = [{"title": f"{topic.title()} policy", "source": topic,
                              "text": f"# {topic.title()}\n\nThe {topic} policy of tenant "
                                      f"{t}: answers within {t + 2} business days."}
                             for topic in TOPICS]
                async with http.post(f"{base}/api/v1/tenants/load{t}/documents",
                                     json={"documents": documents}, headers={
                                         "Authorization": f"Bearer load-{t}-api-key-0123456789"}
                                     ) as r:
                    assert r.status == 200, await r.text()
            load = Load(base, slack, args.tenants, http)
            await load.run(5, 3, args.slack_share)  # warm-up: tabs, caches, the model
            for model in args.models.split(","):
                llm.delay_s = args.ttft_ms / 1000 if model == "streaming" else 0.0
                llm.chunk_delay_s = 1 / args.tokens_per_s if model == "streaming" else 0.0
                rows = []
                for rate in (float(r) for r in args.rates.split(",")):
                    row = summary(rate, await load.run(rate, args.duration, args.slack_share),
                                  llm.delay_s * 1000)
                    rows.append(row)
                    f = row["first_delta_ms"]
                    print(f"{model:>9} | {rate:>5.0f}/s offered {row['offered']:>5} answered "
                          f"{row['answered']:>5} errors {row['errors']:>3} | first delta "
                          f"p50 {f['p50']:>7} p95 {f['p95']:>7} p99 {f['p99']:>7} ms | full "
                          f"p50 {row['full_answer_ms']['p50']:>7} ms | "
                          f"{'ok' if row['sustainable'] else 'NOT sustainable'}", flush=True)
                best = max((r["rate"] for r in rows if r["sustainable"]), default=0.0)
                results[model] = {"rates": rows, "max_sustainable_rate": best}
                print(f"{model:>9} | max sustainable rate: {best:.0f} turns/s", flush=True)
            llm.delay_s, llm.chunk_delay_s = args.ttft_ms / 1000, 1 / args.tokens_per_s
            closed = []
            for count in (int(c) for c in args.users.split(",") if c):
                for channel in ("widget", "slack"):
                    tally, elapsed = await load.users(count, channel, args.duration)
                    row = {"users": count, "channel": channel,
                           "turns_per_s": round(len(tally.full) / elapsed, 1),
                           **{k: v for k, v in summary(0, tally, llm.delay_s * 1000).items()
                              if k in ("answered", "errors", "first_delta_ms",
                                       "full_answer_ms")}}
                    closed.append(row)
                    f = row["first_delta_ms"]
                    print(f"{count:>4} {channel:>6} users | {row['turns_per_s']:>6} turns/s "
                          f"errors {row['errors']:>3} | first delta p50 {f['p50']:>7} "
                          f"p95 {f['p95']:>7} p99 {f['p99']:>7} ms | full p50 "
                          f"{row['full_answer_ms']['p50']:>7} ms", flush=True)
            results["closed_loop_streaming"] = closed
            for tabs in load.tabs.values():
                for tab in tabs:
                    await tab.ws.close()
    finally:
        serve.terminate()
        await asyncio.to_thread(serve.wait, 30)
        await llm_runner.cleanup()
        await slack_runner.cleanup()
        shutil.rmtree(home, ignore_errors=True)
    if not args.no_write:
        print(f"-> {write_results('load', results)}")
    sustained = [results[m]["max_sustainable_rate"] for m in args.models.split(",")]
    return 0 if all(sustained) else 1


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
