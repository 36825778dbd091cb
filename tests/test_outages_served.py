"""`switchboard serve` on a Redis that is killed mid-conversation keeps answering.

The engine-level chaos tests (``test_outages.py``) measure the degradation; this one
proves the process is wired for it: Slack mentions and widget messages sent while the
real redis-server is down are all answered, and the widget connection never breaks.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest

from tests.fakes.slack_api import FakeSlack
from tests.servers import ServerProcess, start_redis, start_switchboard
from tests.test_slack_events import ROOT, SECRET, mention, post, replies, signed

ORIGIN = "https://outage.example"
DURING = 8


@pytest.fixture(scope="module")
def redis() -> Iterator[ServerProcess]:
    server = start_redis()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def served(fake_slack: FakeSlack, redis: ServerProcess, mongo_uri: str,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    home = tmp_path_factory.mktemp("served-outage")
    tenants = home / "tenants"
    tenants.mkdir()
    (tenants / "acme.toml").write_text(
        'id = "acme"\nname = "Acme"\n[limits]\nuser_per_minute = 1000\n'
        '[slack]\nteam_ids = ["T0ACME"]\nbot_token_env = "ACME_SLACK_BOT_TOKEN"\n'
        f'[widget]\npublic_key = "pk_acme_outage"\nallowed_origins = ["{ORIGIN}"]\n'
        'ip_per_minute = 1000\n')
    split = urlsplit(mongo_uri)
    env = {"PATH": "/usr/bin:/bin", "SWITCHBOARD_TENANTS_DIR": str(tenants),
           "SWITCHBOARD_DATA_DIR": str(home / "var"), "HF_HUB_OFFLINE": "1",
           "SLACK_SIGNING_SECRET": SECRET, "SLACK_API_URL": fake_slack.url,
           "ACME_SLACK_BOT_TOKEN": "xoxb-acme", "REDIS_URL": redis.url,
           "MONGODB_URI": f"{split.scheme}://{split.netloc}/outage_{uuid.uuid4().hex[:8]}"}
    base, process = start_switchboard(env, ROOT, home / "serve.log")
    yield base, home / "serve.log"
    process.terminate()
    process.wait(timeout=30)


async def widget_reply(ws: aiohttp.ClientWebSocketResponse, text: str) -> dict[str, Any]:
    client_id = uuid.uuid4().hex[:12]
    await ws.send_json({"type": "message", "text": text, "client_id": client_id})
    while True:
        event = await ws.receive_json(timeout=20)
        if event.get("client_id") == client_id and event["type"] in ("reply", "error"):
            return event


async def test_serve_answers_slack_and_the_widget_while_redis_is_down(
        served: tuple[str, Path], fake_slack: FakeSlack, redis: ServerProcess) -> None:
    base, log = served
    async with aiohttp.ClientSession() as session:
        ws = await session.ws_connect(
            f"{base.replace('http', 'ws', 1)}/widget/v1/ws?key=pk_acme_outage",
            headers={"Origin": ORIGIN})
        await ws.send_json({"type": "hello"})
        assert (await ws.receive_json(timeout=10))["type"] == "welcome"
        assert (await widget_reply(ws, "before the outage"))["type"] == "reply"

        await asyncio.to_thread(redis.kill)
        stamps = [f"1763830000.{n:06d}" for n in range(DURING)]
        widget = []
        for ts in stamps:
            status, _ = await post(base, *signed(mention("T0ACME", ts)))
            assert status == 200
            widget.append(await widget_reply(ws, f"during the outage {ts}"))
        slack_answers = [await replies(fake_slack, ts, 1, wait_s=20) for ts in stamps]
        await asyncio.to_thread(redis.restart)

        assert [e["type"] for e in widget] == ["reply"] * DURING, widget
        assert all(e["kind"] != "apology" for e in widget), widget
        assert all(len(found) == 1 for found in slack_answers)
        deadline = time.monotonic() + 10
        while "shared state is served from it again" not in log.read_text():
            assert time.monotonic() < deadline, "never went back to Redis"
            await widget_reply(ws, "after the outage")
        assert (await widget_reply(ws, "after the outage"))["type"] == "reply"
        await ws.close()
    assert "Traceback" not in log.read_text()
