"""Two `switchboard serve` workers behind one Slack app, sharing Redis and MongoDB, with
the LLM served by a local OpenAI-compatible stand-in: redeliveries spread over both
workers give one answer, a thread's follow-up carries its history whichever worker takes
it, and two tenants' identical channel and thread ids never share a conversation."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.fakes.openai_server import FakeOpenAI, start_fake_openai
from tests.fakes.slack_api import FakeSlack, start_fake_slack
from tests.servers import ServerProcess, start_switchboard
from tests.test_slack_events import ROOT, SECRET, mention, post, replies, signed


@pytest.fixture(scope="module")
async def fakes() -> AsyncIterator[tuple[FakeSlack, FakeOpenAI]]:
    slack, llm = FakeSlack(), FakeOpenAI()
    slack_runner = await start_fake_slack(slack)
    _, llm_runner = await start_fake_openai(llm)
    yield slack, llm
    await slack_runner.cleanup()
    await llm_runner.cleanup()


@pytest.fixture(scope="module")
def workers(fakes: tuple[FakeSlack, FakeOpenAI], redis_server: ServerProcess,
            mongo_uri: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[str]]:
    slack, llm = fakes
    home = tmp_path_factory.mktemp("slack-workers")
    tenants = home / "tenants"
    tenants.mkdir()
    for tenant_id, team in (("acme", "T0ACME"), ("globex", "T0GLOBEX")):
        (tenants / f"{tenant_id}.toml").write_text(
            f'id = "{tenant_id}"\nname = "{tenant_id.title()}"\n[slack]\n'
            f'team_ids = ["{team}"]\nbot_token_env = "{tenant_id.upper()}_SLACK_BOT_TOKEN"\n')
    split = urlsplit(mongo_uri)
    env = {"PATH": "/usr/bin:/bin", "SWITCHBOARD_TENANTS_DIR": str(tenants),
           "SLACK_SIGNING_SECRET": SECRET, "SLACK_API_URL": slack.url,
           "ACME_SLACK_BOT_TOKEN": "xoxb-acme", "GLOBEX_SLACK_BOT_TOKEN": "xoxb-globex",
           "REDIS_URL": f"{redis_server.url}/3",
           "MONGODB_URI": f"{split.scheme}://{split.netloc}/workers_{uuid.uuid4().hex[:8]}",
           "OPENAI_API_KEY": "sk-test-key", "OPENAI_BASE_URL": llm.url,
           "HF_HUB_OFFLINE": "1"}
    started = [start_switchboard({**env, "SWITCHBOARD_DATA_DIR": str(home / f"var{n}")},
                                 ROOT, home / f"serve{n}.log") for n in range(2)]
    yield [base for base, _ in started]
    for _, process in started:
        process.terminate()
    for _, process in started:
        process.wait(timeout=30)


def plain(team: str, ts: str, text: str, thread_ts: str, event_id: str) -> dict[str, Any]:
    return {"type": "event_callback", "team_id": team, "event_id": event_id,
            "event": {"type": "message", "user": "U0ALICE", "text": text, "ts": ts,
                      "thread_ts": thread_ts, "channel": "C0GENERAL",
                      "channel_type": "channel"}}


def asked(llm: FakeOpenAI, text: str) -> list[dict[str, Any]]:
    return [r for r in llm.requests if text in str(r["messages"][-1]["content"])]


async def test_a_retry_storm_over_two_workers_gets_one_reply(
        workers: list[str], fakes: tuple[FakeSlack, FakeOpenAI]) -> None:
    slack, llm = fakes
    ts = "1763772000.000100"
    first = mention("T0ACME", ts, "<@U0BOT> storm question")
    # Slack sends one message as app_mention and as message; each is redelivered.
    second = {**first, "event_id": f"Ev2{ts}",
              "event": {**first["event"], "type": "message", "channel_type": "channel"}}
    deliveries = [post(workers[n % 2], *signed(body, retry=n // 2 or None))
                  for n in range(8) for body in (first, second)]
    statuses = await asyncio.gather(*deliveries)
    assert {status for status, _ in statuses} == {200}
    await replies(slack, ts, 1)
    await asyncio.sleep(1.5)
    assert len(await replies(slack, ts, 2, wait_s=0.1)) == 1
    assert len(asked(llm, "storm question")) == 1


async def test_a_follow_up_on_the_other_worker_carries_the_history(
        workers: list[str], fakes: tuple[FakeSlack, FakeOpenAI]) -> None:
    slack, llm = fakes
    ts = "1763772100.000100"
    await post(workers[0], *signed(mention("T0ACME", ts, "<@U0BOT> what is the refund window?")))
    await replies(slack, ts, 1)
    await post(workers[1], *signed(plain("T0ACME", "1763772101.000100",
                                         "and for enterprise plans?", ts, "EvFollow")))
    await replies(slack, ts, 2)
    [request] = asked(llm, "and for enterprise plans?")
    history = " ".join(str(m["content"]) for m in request["messages"][:-1])
    assert "what is the refund window?" in history
    assert "Answer to" in history  # the assistant's first answer is part of it too


async def test_two_tenants_with_the_same_thread_ids_never_meet(
        workers: list[str], fakes: tuple[FakeSlack, FakeOpenAI]) -> None:
    slack, llm = fakes
    ts = "1763772200.000100"
    await post(workers[0], *signed(mention("T0ACME", ts, "<@U0BOT> acme secret plans")))
    await replies(slack, ts, 1)
    await post(workers[1], *signed({**mention("T0GLOBEX", ts, "<@U0BOT> globex question"),
                                    "event_id": "EvGlobex"}))
    found = await replies(slack, ts, 2)
    assert sorted(c.token for c in found) == ["xoxb-acme", "xoxb-globex"]
    [request] = asked(llm, "globex question")
    assert "acme secret plans" not in str(request["messages"])
