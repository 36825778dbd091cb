"""On the embedded defaults one `serve` does everything: it also runs the Discord
gateway (when a bot token is set) and the scheduler's jobs, since only it may write the
local index; flags turn them off."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from tests.fakes.discord_api import BOT_ID, FakeDiscord, start_fake_discord, user
from tests.servers import free_port, start_switchboard

ROOT = Path(__file__).resolve().parent.parent
GUILD, CHANNEL = "133333333333333333", "233333333333333333"
ALICE = user("433333333333333333", "alice")


def home_with_tenant(home: Path) -> dict[str, str]:
    (home / "tenants").mkdir()
    (home / "kb").mkdir()
    (home / "kb" / "shipping.md").write_text(
        "# Shipping\n\nParcels leave the Rotterdam warehouse within two working days.\n")
    (home / "tenants" / "acme.toml").write_text(
        'id = "acme"\nname = "Acme"\n[knowledge]\nscore_threshold = 0.05\n'
        'sources = [{ path = "kb/", schedule = "0 3 * * *" }]\n'
        f'[discord]\nguild_ids = ["{GUILD}"]\n')
    return {"PATH": "/usr/bin:/bin", "SWITCHBOARD_TENANTS_DIR": str(home / "tenants"),
            "SWITCHBOARD_DATA_DIR": str(home / "var"), "HF_HUB_OFFLINE": "1",
            "LOG_FORMAT": "json"}


def log_messages(path: Path) -> list[str]:
    return [json.loads(line)["msg"] for line in path.read_text().splitlines()
            if line.startswith("{")]


def wait_ready(base: str, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{base}/readyz", timeout=5):
                return
        except OSError:
            time.sleep(0.3)
    raise AssertionError("never ready")


async def test_serve_answers_discord_and_runs_the_scheduler_in_one_process(
        tmp_path: Path) -> None:
    discord = FakeDiscord()
    discord.add_guild(GUILD, [CHANNEL])
    runner = await start_fake_discord(discord)
    env = {**home_with_tenant(tmp_path), "DISCORD_BOT_TOKEN": "fake-bot-token",
           "DISCORD_API_URL": discord.url, "DISCORD_GATEWAY_URL": discord.gateway_url}
    base, serve = await asyncio.to_thread(start_switchboard, env, ROOT, tmp_path / "serve.log")
    try:
        await asyncio.to_thread(wait_ready, base)
        await discord.connected()
        question = discord.message_event(GUILD, CHANNEL, ALICE,
                                         f"<@{BOT_ID}> how fast do parcels leave?",
                                         mention_bot=True)
        await discord.dispatch("MESSAGE_CREATE", question)
        deadline = time.monotonic() + 30

        def answered() -> list[dict[str, Any]]:
            return [m for m in discord.messages.values() if m["embeds"]]

        while not answered() and time.monotonic() < deadline:  # noqa: ASYNC110 - a fake's state
            await asyncio.sleep(0.05)
        [answer] = answered()
        assert "two working days" in answer["content"]
        messages = log_messages(tmp_path / "serve.log")
        assert any(m.startswith("scheduler running: ") and "ingest:acme" in m
                   for m in messages)
        assert any("Discord gateway running in this process" in m for m in messages)
    finally:
        serve.terminate()
        await asyncio.to_thread(serve.wait, 30)
        await runner.cleanup()


def test_flags_turn_the_scheduler_and_discord_off(tmp_path: Path) -> None:
    env = {**home_with_tenant(tmp_path), "DISCORD_BOT_TOKEN": "fake-bot-token",
           "DISCORD_API_URL": "http://127.0.0.1:9/api"}
    log = tmp_path / "serve.log"
    with log.open("w") as sink:
        port = free_port()
        serve = subprocess.Popen([sys.executable, "-m", "bots", "serve", "--port", str(port),
                                  "--no-scheduler", "--no-discord"], env=env, cwd=ROOT,
                                 stdout=subprocess.DEVNULL, stderr=sink, text=True)
    try:
        wait_ready(f"http://127.0.0.1:{port}")
    finally:
        serve.terminate()
        serve.wait(30)
    messages = log_messages(log)
    assert not any("scheduler running" in m or "Discord gateway" in m for m in messages)
