"""A `serve` process killed with turns in flight answers every one of them after restart.

Slack has acknowledged these events (it will not send them again), the model is slow,
and the process is SIGKILLed mid-answer. The journal under the data directory holds the
accepted messages; the restarted process replays them and posts each answer into its
thread with the workspace's token.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.fakes.openai_server import FakeOpenAI, start_fake_openai
from tests.fakes.slack_api import FakeSlack
from tests.servers import ServerProcess, start_mongo_wire, start_switchboard
from tests.test_slack_events import ROOT, SECRET, mention, post, signed

IN_FLIGHT = 6


@pytest.fixture(scope="module")
async def slow_llm() -> AsyncIterator[FakeOpenAI]:
    fake, runner = await start_fake_openai(FakeOpenAI(chunk_delay_s=0.4))
    yield fake
    await runner.cleanup()


@pytest.fixture(scope="module")
def mongo() -> Iterator[ServerProcess]:
    server = start_mongo_wire()
    yield server
    server.stop()


def _env(home: Path, fake_slack: FakeSlack, llm: FakeOpenAI, mongo: ServerProcess
         ) -> dict[str, str]:
    tenants = home / "tenants"
    tenants.mkdir(exist_ok=True)
    (tenants / "acme.toml").write_text(
        'id = "acme"\nname = "Acme"\n[llm]\nmodel = "gpt-4o-mini"\n'
        '[limits]\nuser_per_minute = 1000\n'
        '[slack]\nteam_ids = ["T0ACME"]\nbot_token_env = "ACME_SLACK_BOT_TOKEN"\n')
    return {"PATH": "/usr/bin:/bin", "SWITCHBOARD_TENANTS_DIR": str(tenants),
            "SWITCHBOARD_DATA_DIR": str(home / "var"), "SLACK_SIGNING_SECRET": SECRET,
            "SLACK_API_URL": fake_slack.url, "ACME_SLACK_BOT_TOKEN": "xoxb-acme",
            "OPENAI_API_KEY": "sk-test-not-real", "OPENAI_BASE_URL": llm.url,
            "MONGODB_URI": mongo.url.replace("/?", "/crash?"), "HF_HUB_OFFLINE": "1"}


def answered(fake_slack: FakeSlack, ts: str, since: int = 0) -> bool:
    """A complete answer to the question asked in thread ``ts`` was posted or edited in
    (the fake model echoes the question, and the question names the thread)."""
    return any(c.method in ("chat.postMessage", "chat.update")
               and f"question {ts}" in str(c.payload.get("text", ""))
               and "(model gpt-4o-mini)" in str(c.payload.get("text", ""))
               for c in fake_slack.calls[since:])


async def test_turns_in_flight_when_the_process_is_killed_are_answered_after_restart(
        slow_llm: FakeOpenAI, fake_slack: FakeSlack, mongo: ServerProcess,
        tmp_path: Path) -> None:
    env = _env(tmp_path, fake_slack, slow_llm, mongo)
    base, process = start_switchboard(env, ROOT, tmp_path / "serve-1.log")
    stamps = [f"1763810000.{n:06d}" for n in range(IN_FLIGHT)]
    try:
        for ts in stamps:
            status, _ = await post(base, *signed(mention("T0ACME", ts,
                                                         f"<@U0BOT> question {ts}")))
            assert status == 200
        deadline = time.monotonic() + 20
        while len(slow_llm.requests) < IN_FLIGHT:
            assert time.monotonic() < deadline, "the turns never reached the model"
            await asyncio.sleep(0.05)
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    assert not any(answered(fake_slack, ts) for ts in stamps), \
        "a turn finished before the kill: the test would prove nothing"

    since = len(fake_slack.calls)
    base, process = start_switchboard(env, ROOT, tmp_path / "serve-2.log")
    try:
        deadline = time.monotonic() + 60
        missing = set(stamps)
        while missing and time.monotonic() < deadline:
            missing = {ts for ts in missing if not answered(fake_slack, ts, since)}
            await asyncio.sleep(0.1)
        assert missing == set(), f"{len(missing)} of {IN_FLIGHT} turns were never answered"
        assert "replayed a turn interrupted by the last stop" in \
            (tmp_path / "serve-2.log").read_text()
    finally:
        process.terminate()
        process.wait(timeout=30)
