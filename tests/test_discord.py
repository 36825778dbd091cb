"""`switchboard discord` (a real discord.py client in its own process) against a local fake
Discord gateway and REST API, with the LLM served by a local OpenAI-compatible stand-in."""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
from aiohttp import web

from tests.fakes.discord_api import BOT_ID, Call, FakeDiscord, start_fake_discord, user
from tests.fakes.openai_server import FakeOpenAI, Plan, start_fake_openai, tool_results
from tests.servers import free_port

ROOT = Path(__file__).resolve().parent.parent
ACME_GUILD, ACME_CHANNEL, ACME_ADMIN_ROLE = "111111111111111111", "211111111111111111", \
    "311111111111111111"
GLOBEX_GUILD, GLOBEX_CHANNEL = "122222222222222222", "222222222222222222"
ALICE = user("411111111111111111", "alice")
BOB = user("422222222222222222", "bob")
HANDBOOK = "Parcels ship within two working days from the Rotterdam warehouse."


@pytest.fixture(scope="module")
async def fakes() -> AsyncIterator[tuple[FakeDiscord, FakeOpenAI, str]]:
    discord, llm = FakeDiscord(), FakeOpenAI(answer_prefix="From the handbook [1]")
    discord.add_guild(ACME_GUILD, [ACME_CHANNEL], admin_role=ACME_ADMIN_ROLE)
    discord.add_guild(GLOBEX_GUILD, [GLOBEX_CHANNEL])
    discord_runner = await start_fake_discord(discord)
    _, llm_runner = await start_fake_openai(llm)

    async def handbook(request: web.Request) -> web.Response:
        return web.Response(text=HANDBOOK, content_type="text/plain")

    site_app = web.Application()
    site_app.router.add_get("/shipping.txt", handbook)
    site_runner = web.AppRunner(site_app, access_log=None)
    await site_runner.setup()
    site = web.TCPSite(site_runner, "127.0.0.1", 0)
    await site.start()
    doc = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/shipping.txt"  # type: ignore[union-attr]
    yield discord, llm, doc
    for runner in (discord_runner, llm_runner, site_runner):
        await runner.cleanup()


@pytest.fixture(scope="module")
async def bot(fakes: tuple[FakeDiscord, FakeOpenAI, str], mongo_uri: str,
              tmp_path_factory: pytest.TempPathFactory
              ) -> AsyncIterator[asyncio.subprocess.Process]:
    discord, llm, doc = fakes
    home = tmp_path_factory.mktemp("discord")
    tenants = home / "tenants"
    tenants.mkdir()
    (tenants / "acme.toml").write_text(
        'id = "acme"\nname = "Acme"\n[persona]\nsystem_prompt = "You are ACME-BOT."\n'
        '[knowledge]\nallow_private_urls = true\nscore_threshold = 0.05\n'
        f'sources = [{{ path = "{doc}" }}]\n[discord]\nguild_ids = ["{ACME_GUILD}"]\n'
        f'admin_role_ids = ["{ACME_ADMIN_ROLE}"]\n')
    (tenants / "globex.toml").write_text(
        'id = "globex"\nname = "Globex"\n[persona]\nsystem_prompt = "You are GLOBEX-BOT."\n'
        f'[discord]\nguild_ids = ["{GLOBEX_GUILD}"]\nchannel_ids = ["{GLOBEX_CHANNEL}"]\n'
        'open_threads = false\n[tools]\nallow = ["search_knowledge", "forget"]\n')
    split = urlsplit(mongo_uri)
    env = {"PATH": "/usr/bin:/bin", "SWITCHBOARD_TENANTS_DIR": str(tenants),
           "SWITCHBOARD_DATA_DIR": str(home / "var"), "HF_HUB_OFFLINE": "1",
           "MONGODB_URI": f"{split.scheme}://{split.netloc}/discord_{uuid.uuid4().hex[:8]}",
           "OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": llm.url,
           "DISCORD_BOT_TOKEN": "fake-bot-token", "DISCORD_API_URL": discord.url,
           "DISCORD_GATEWAY_URL": discord.gateway_url,
           "SWITCHBOARD_METRICS_PORT": str(METRICS_PORT)}
    # The document site runs on this event loop, so the ingest must not block it.
    ingest = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bots", "ingest", "--tenant", "acme", doc, env=env, cwd=ROOT,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    _, errors = await asyncio.wait_for(ingest.communicate(), 300)
    assert ingest.returncode == 0, errors.decode()
    with (home / "discord.log").open("w") as log:
        RUNNING[:] = [await start_bot(env, log)]
        yield RUNNING[0]
        RUNNING[0].terminate()
        await asyncio.wait_for(RUNNING[0].wait(), 30)


METRICS_PORT = free_port()
RUNNING: list[asyncio.subprocess.Process] = []
"""The bot process of this module (a test restarts it)."""


async def start_bot(env: dict[str, str], log: Any) -> asyncio.subprocess.Process:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bots", "discord", env=env, cwd=ROOT,
        stdout=asyncio.subprocess.DEVNULL, stderr=log)
    process.env = env  # type: ignore[attr-defined]
    process.log = log  # type: ignore[attr-defined]
    return process


async def wait_for(check: Any, wait_s: float = 20.0) -> Any:
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        await asyncio.sleep(0.05)
    raise AssertionError("timed out")


def posts_to(discord: FakeDiscord, channel_id: str) -> list[Call]:
    return [c for c in discord.calls
            if c.method == "POST" and c.path == f"/channels/{channel_id}/messages"]


def final_texts(discord: FakeDiscord, channel_id: str) -> list[dict[str, Any]]:
    """Messages the bot posted in a channel, as they stand after every edit."""
    return [m for m in discord.messages.values() if m["channel_id"] == channel_id]


@pytest.fixture(scope="module")
async def ready(bot: asyncio.subprocess.Process, fakes: tuple[FakeDiscord, FakeOpenAI, str]
                ) -> FakeDiscord:
    discord = fakes[0]
    await discord.connected()
    await wait_for(lambda: len(discord.of("PUT", "/commands")) >= 2, 20)
    return discord


async def test_commands_are_synced_per_guild_from_the_registry(ready: FakeDiscord) -> None:
    synced = {c.path.split("/")[4]: c.body["__list__"] for c in ready.of("PUT", "/commands")}
    assert set(synced) == {ACME_GUILD, GLOBEX_GUILD}
    names = {c["name"] for c in synced[ACME_GUILD]}
    assert {"help", "forget", "stats", "sources"} <= names
    ingest = next(c for c in synced[ACME_GUILD] if c["name"] == "ingest")
    assert ingest["options"][0]["name"] == "url" and ingest["options"][0]["type"] == 3


async def test_a_mention_opens_a_thread_answered_with_sources_and_a_follow_up(
        ready: FakeDiscord, fakes: tuple[FakeDiscord, FakeOpenAI, str]) -> None:
    discord, llm, doc = fakes
    question = ready.message_event(ACME_GUILD, ACME_CHANNEL, ALICE,
                                   f"<@{BOT_ID}> how fast do parcels ship?", mention_bot=True)
    await discord.dispatch("MESSAGE_CREATE", question)
    [opened] = await wait_for(lambda: discord.of("POST", f"/messages/{question['id']}/threads"))
    thread_id = next(t for t in discord.threads if discord.threads[t]["name"]
                     == "how fast do parcels ship?")
    assert opened.body["name"] == "how fast do parcels ship?"
    await wait_for(lambda: any(m["embeds"] for m in final_texts(discord, thread_id)))
    [answer] = final_texts(discord, thread_id)
    assert "how fast do parcels ship?" in answer["content"]
    [embed] = answer["embeds"]
    assert embed["title"] == "Sources" and doc in embed["description"]
    buttons = [b["custom_id"] for row in answer["components"] for b in row["components"]]
    assert any(b.startswith("sb:fb:up:") for b in buttons)

    follow = ready.message_event(ACME_GUILD, thread_id, ALICE, "and on weekends?")
    await discord.dispatch("MESSAGE_CREATE", follow)
    await wait_for(lambda: len(final_texts(discord, thread_id)) == 2)
    request = next(r for r in llm.requests if "and on weekends?" in
                   str(r["messages"][-1]["content"]))
    assert "how fast do parcels ship?" in str(request["messages"][:-1])


async def test_the_model_calls_a_tool_and_the_channel_shows_it(
        ready: FakeDiscord, fakes: tuple[FakeDiscord, FakeOpenAI, str]) -> None:
    discord, llm, _ = fakes
    question_text = "what do six boxes of seven cost"

    def script(body: dict[str, Any], step: int) -> Plan | None:
        if question_text not in str(body["messages"]):
            return None
        if step == 1:
            return Plan(calls=[("calculator", {"expression": "6 * 7"})])
        return Plan(f"Six boxes cost {tool_results(body)[0]} euros.")
    llm.script = script
    try:
        question = ready.message_event(ACME_GUILD, ACME_CHANNEL, ALICE,
                                       f"<@{BOT_ID}> {question_text}", mention_bot=True)
        await discord.dispatch("MESSAGE_CREATE", question)
        thread_id = await wait_for(lambda: next((t for t in discord.threads if
                                                 discord.threads[t]["name"] == question_text),
                                                None))
        await wait_for(lambda: any("euros" in m["content"]
                                   for m in final_texts(discord, thread_id)))
        [answer] = final_texts(discord, thread_id)
        assert answer["content"].startswith("Six boxes cost 42 euros.")
        assert "-# 🔧 `calculator` (= 42)" in answer["content"]
        shown = [str(c.body.get("content", "")) for c in discord.calls
                 if c.path.startswith(f"/channels/{thread_id}/messages")]
        assert any("Calculating…" in text for text in shown), shown
    finally:
        llm.script = None


async def test_a_slash_command_is_deferred_then_edited(ready: FakeDiscord) -> None:
    interaction = ready.interaction_event(ACME_GUILD, ACME_CHANNEL, ALICE, "help")
    await ready.dispatch("INTERACTION_CREATE", interaction)
    [callback] = await wait_for(lambda: ready.of("POST", f"/interactions/{interaction['id']}/"))
    assert callback.body["type"] == 5  # deferred, "thinking"
    [edited] = await wait_for(lambda: ready.of("PATCH", f"/{interaction['token']}/messages/"
                                                        "@original"))
    assert "/forget" in edited.body["content"]


async def test_admin_commands_need_an_admin_role_or_manage_server(ready: FakeDiscord) -> None:
    refused = ready.interaction_event(ACME_GUILD, ACME_CHANNEL, BOB, "stats")
    await ready.dispatch("INTERACTION_CREATE", refused)
    [callback] = await wait_for(lambda: ready.of("POST", f"/interactions/{refused['id']}/"))
    assert callback.body["data"]["flags"] & 64  # ephemeral
    [answer] = await wait_for(lambda: ready.of("PATCH", f"/{refused['token']}/"))
    assert "admins only" in answer.body["content"]
    admitted = ready.interaction_event(ACME_GUILD, ACME_CHANNEL, BOB, "stats",
                                       roles=[ACME_ADMIN_ROLE])
    await ready.dispatch("INTERACTION_CREATE", admitted)
    [stats] = await wait_for(lambda: ready.of("PATCH", f"/{admitted['token']}/"))
    assert "turns" in stats.body["content"]


async def test_a_long_answer_is_split_without_breaking_code_fences(
        ready: FakeDiscord, fakes: tuple[FakeDiscord, FakeOpenAI, str]) -> None:
    _, llm, _ = fakes
    code = "\n".join(f"print('line {n}')  # " + "x" * 40 for n in range(100))
    llm.answer_prefix = "Here is the script:\n\n```python\n" + code + "\n```\n\nDone"
    try:
        message = ready.message_event(GLOBEX_GUILD, GLOBEX_CHANNEL, ALICE, "show the script")
        await ready.dispatch("MESSAGE_CREATE", message)
        parts = await wait_for(lambda: [m for m in final_texts(ready, GLOBEX_CHANNEL)
                                        if "show the script" in m["content"]] and
                               final_texts(ready, GLOBEX_CHANNEL))
    finally:
        llm.answer_prefix = "From the handbook [1]"
    texts = [m["content"] for m in parts]
    assert len(texts) >= 3 and all(len(t) <= 2000 for t in texts)
    assert all(t.count("```") % 2 == 0 for t in texts)
    assert texts[1].startswith("```python")


async def test_two_guilds_of_two_tenants_never_cross(
        ready: FakeDiscord, fakes: tuple[FakeDiscord, FakeOpenAI, str]) -> None:
    _, llm, _ = fakes
    for guild, channel, text in ((ACME_GUILD, ACME_CHANNEL, "acme private question"),
                                 (GLOBEX_GUILD, GLOBEX_CHANNEL, "globex open question")):
        await ready.dispatch("MESSAGE_CREATE", ready.message_event(
            guild, channel, ALICE, f"<@{BOT_ID}> {text}", mention_bot=True))
    globex = await wait_for(lambda: [r for r in llm.requests
                                     if "globex open question" in str(r["messages"][-1])])
    acme = await wait_for(lambda: [r for r in llm.requests
                                   if "acme private question" in str(r["messages"][-1])])
    assert "GLOBEX-BOT" in str(globex[0]["messages"]) and "ACME" not in str(globex[0])
    assert "Rotterdam" not in str(globex[0]) and "GLOBEX" not in str(acme[0])


async def test_a_message_replayed_after_resume_is_answered_once(ready: FakeDiscord) -> None:
    ready.replay_overlap = 3
    try:
        message = ready.message_event(GLOBEX_GUILD, GLOBEX_CHANNEL, BOB, "replay me please")
        await ready.dispatch("MESSAGE_CREATE", message)
        await wait_for(lambda: [m for m in final_texts(ready, GLOBEX_CHANNEL)
                                if "replay me please" in m["content"]])
        resumes = ready.resumes
        await ready.drop()
        await wait_for(lambda: ready.resumes > resumes, 30)
        await asyncio.sleep(1.5)
    finally:
        ready.replay_overlap = 0
    answers = [m for m in final_texts(ready, GLOBEX_CHANNEL) if "replay me please"
               in m["content"]]
    assert len(answers) == 1
    assert ready.identifies == 1  # it resumed, it did not start a new session


async def test_a_429_is_waited_out_and_the_answer_still_arrives(ready: FakeDiscord) -> None:
    before = len(posts_to(ready, GLOBEX_CHANNEL))
    ready.rate_limited[f"POST /channels/{GLOBEX_CHANNEL}/messages"] = 0.5
    message = ready.message_event(GLOBEX_GUILD, GLOBEX_CHANNEL, BOB, "rate limited question")
    await ready.dispatch("MESSAGE_CREATE", message)
    await wait_for(lambda: [m for m in final_texts(ready, GLOBEX_CHANNEL)
                            if "rate limited question" in m["content"]])
    tries = posts_to(ready, GLOBEX_CHANNEL)[before:]
    assert len(tries) == 2 and tries[0].body == tries[1].body  # refused, then retried
    async with aiohttp.ClientSession() as http, http.get(
            f"http://127.0.0.1:{METRICS_PORT}/metrics") as response:
        metrics = await response.text()
    assert 'switchboard_platform_rate_limited_total{platform="discord",route="POST ' \
           '/api/v10/channels/{id}/messages"} 1.0' in metrics


async def test_an_edited_question_is_answered_again_in_the_same_reply_and_a_deleted_one_removed(
        ready: FakeDiscord) -> None:
    question = ready.message_event(GLOBEX_GUILD, GLOBEX_CHANNEL, ALICE, "first wording")
    await ready.dispatch("MESSAGE_CREATE", question)
    [reply] = await wait_for(lambda: [m for m in final_texts(ready, GLOBEX_CHANNEL)
                                      if "first wording" in m["content"] and m["embeds"] == []
                                      and m["components"]])
    edited = {**question, "content": "second wording", "edited_timestamp": time.strftime(
        "%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())}
    await ready.dispatch("MESSAGE_UPDATE", edited)
    await wait_for(lambda: "second wording" in ready.messages[reply["id"]]["content"])
    assert not [m for m in final_texts(ready, GLOBEX_CHANNEL)
                if "second wording" in m["content"] and m["id"] != reply["id"]]
    await ready.dispatch("MESSAGE_DELETE", {"id": question["id"], "channel_id": GLOBEX_CHANNEL,
                                            "guild_id": GLOBEX_GUILD})
    await wait_for(lambda: ready.of("DELETE", f"/messages/{reply['id']}"))


async def test_a_feedback_button_from_before_a_restart_still_works(
        ready: FakeDiscord) -> None:
    question = ready.message_event(GLOBEX_GUILD, GLOBEX_CHANNEL, ALICE, "rate me")
    await ready.dispatch("MESSAGE_CREATE", question)
    [reply] = await wait_for(lambda: [m for m in final_texts(ready, GLOBEX_CHANNEL)
                                      if "rate me" in m["content"] and m["components"]])
    up = next(b["custom_id"] for row in reply["components"] for b in row["components"]
              if b["custom_id"].startswith("sb:fb:up:"))
    await asyncio.sleep(0.3)
    old = RUNNING[0]
    old.terminate()
    await asyncio.wait_for(old.wait(), 30)
    RUNNING[0] = await start_bot(old.env, old.log)  # type: ignore[attr-defined]
    await ready.connected(ready.identifies + ready.resumes + 1)
    await asyncio.sleep(0.5)
    click = ready.interaction_event(GLOBEX_GUILD, GLOBEX_CHANNEL, ALICE, "")
    click.update(type=3, data={"custom_id": up, "component_type": 2},
                 message={**reply, "author": ready.messages[reply["id"]]["author"]})
    await ready.dispatch("INTERACTION_CREATE", click)
    [answer] = await wait_for(lambda: ready.of("POST", f"/interactions/{click['id']}/"))
    assert answer.body["data"]["content"] == "Thanks for the feedback!"
    assert answer.body["data"]["flags"] & 64


async def test_a_change_the_model_proposes_waits_for_the_confirm_button(
        ready: FakeDiscord, fakes: tuple[FakeDiscord, FakeOpenAI, str]) -> None:
    llm = fakes[1]

    def obey(body: dict[str, Any], step: int) -> Plan | None:
        if "planted forget" not in json.dumps(body["messages"]):
            return None
        return Plan(calls=[("forget", {"scope": "me"})]) if step == 1 else \
            Plan("I have asked you to confirm forgetting what you said.")
    llm.script = obey
    try:
        question = ready.message_event(GLOBEX_GUILD, GLOBEX_CHANNEL, ALICE, "planted forget")
        await ready.dispatch("MESSAGE_CREATE", question)
        [reply] = await wait_for(lambda: [m for m in final_texts(ready, GLOBEX_CHANNEL)
                                          if "Needs your confirmation" in m["content"]
                                          and m["components"]])
        confirm = next(b["custom_id"] for row in reply["components"] for b in row["components"]
                       if b["custom_id"].startswith("sb:cf:yes:"))
        assert any(b["custom_id"].startswith("sb:cf:no:") for row in reply["components"]
                   for b in row["components"])
        for who, expected in ((BOB, "Only the person"), (ALICE, "Done: Forgetting messages")):
            click = ready.interaction_event(GLOBEX_GUILD, GLOBEX_CHANNEL, who, "")
            click.update(type=3, data={"custom_id": confirm, "component_type": 2},
                         message={**reply, "author": ready.messages[reply["id"]]["author"]})
            await ready.dispatch("INTERACTION_CREATE", click)
            await wait_for(lambda expected=expected: [
                m for m in final_texts(ready, GLOBEX_CHANNEL) if expected in m["content"]])
    finally:
        llm.script = None


async def test_an_answer_interrupted_by_a_crash_is_posted_after_the_restart(
        ready: FakeDiscord, fakes: tuple[FakeDiscord, FakeOpenAI, str]) -> None:
    llm = fakes[1]
    llm.chunk_delay_s = 0.4
    question = ready.message_event(GLOBEX_GUILD, GLOBEX_CHANNEL, ALICE, "crash question one")
    asked = len(llm.requests)
    try:
        await ready.dispatch("MESSAGE_CREATE", question)
        await wait_for(lambda: len(llm.requests) > asked)
        old = RUNNING[0]
        old.kill()  # mid-answer: the model is still streaming
        await asyncio.wait_for(old.wait(), 30)
    finally:
        llm.chunk_delay_s = 0.0
    assert not [m for m in final_texts(ready, GLOBEX_CHANNEL)
                if "crash question one" in m["content"] and "(model" in m["content"]]
    RUNNING[0] = await start_bot(old.env, old.log)  # type: ignore[attr-defined]
    await ready.connected(ready.identifies + ready.resumes + 1)
    await wait_for(lambda: [m for m in final_texts(ready, GLOBEX_CHANNEL)
                            if "crash question one" in m["content"]
                            and "(model" in m["content"] and m["components"]], wait_s=60)


async def test_the_sharded_client_serves_too(mongo_uri: str, tmp_path: Path) -> None:
    discord, llm = FakeDiscord(), FakeOpenAI()
    discord.add_guild(GLOBEX_GUILD, [GLOBEX_CHANNEL])
    discord_runner = await start_fake_discord(discord)
    _, llm_runner = await start_fake_openai(llm)
    (tmp_path / "tenants").mkdir()
    (tmp_path / "tenants" / "globex.toml").write_text(
        f'id = "globex"\nname = "Globex"\n[discord]\nguild_ids = ["{GLOBEX_GUILD}"]\n'
        f'channel_ids = ["{GLOBEX_CHANNEL}"]\nopen_threads = false\n')
    split = urlsplit(mongo_uri)
    env = {"PATH": "/usr/bin:/bin", "SWITCHBOARD_TENANTS_DIR": str(tmp_path / "tenants"),
           "SWITCHBOARD_DATA_DIR": str(tmp_path / "var"), "HF_HUB_OFFLINE": "1",
           "MONGODB_URI": f"{split.scheme}://{split.netloc}/shards_{uuid.uuid4().hex[:8]}",
           "OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": llm.url, "DISCORD_SHARDED": "1",
           "DISCORD_BOT_TOKEN": "fake-bot-token", "DISCORD_API_URL": discord.url,
           "DISCORD_GATEWAY_URL": discord.gateway_url}
    with (tmp_path / "discord.log").open("w") as log:
        process = await start_bot(env, log)
        try:
            await discord.connected()
            assert discord.of("GET", "/gateway/bot")  # asks Discord how many shards
            await discord.dispatch("MESSAGE_CREATE", discord.message_event(
                GLOBEX_GUILD, GLOBEX_CHANNEL, ALICE, "sharded hello"))
            await wait_for(lambda: [m for m in final_texts(discord, GLOBEX_CHANNEL)
                                    if "sharded hello" in m["content"]])
        finally:
            if process.returncode is None:
                process.terminate()
            await asyncio.wait_for(process.wait(), 30)
            await discord_runner.cleanup()
            await llm_runner.cleanup()


def _guild_on_shard(shard: int, count: int, base: int) -> str:
    """A guild id Discord routes to ``shard`` of ``count`` (``(id >> 22) % count``)."""
    guild = base
    while (guild >> 22) % count != shard:
        guild += 1 << 22
    return str(guild)


async def test_shards_split_over_two_processes_each_serve_their_guilds(
        mongo_uri: str, tmp_path: Path) -> None:
    discord, llm = FakeDiscord(), FakeOpenAI()
    guilds = [_guild_on_shard(n, 2, 133333333333333333) for n in (0, 1)]
    channels = ["233333333333333331", "233333333333333332"]
    for guild, channel in zip(guilds, channels, strict=True):
        discord.add_guild(guild, [channel])
    discord_runner = await start_fake_discord(discord)
    _, llm_runner = await start_fake_openai(llm)
    (tmp_path / "tenants").mkdir()
    (tmp_path / "tenants" / "globex.toml").write_text(
        f'id = "globex"\nname = "Globex"\n[discord]\nguild_ids = {json.dumps(guilds)}\n'
        f'channel_ids = {json.dumps(channels)}\nopen_threads = false\n')
    split = urlsplit(mongo_uri)
    env = {"PATH": "/usr/bin:/bin", "SWITCHBOARD_TENANTS_DIR": str(tmp_path / "tenants"),
           "SWITCHBOARD_DATA_DIR": str(tmp_path / "var"), "HF_HUB_OFFLINE": "1",
           "MONGODB_URI": f"{split.scheme}://{split.netloc}/split_{uuid.uuid4().hex[:8]}",
           "OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": llm.url,
           "DISCORD_BOT_TOKEN": "fake-bot-token", "DISCORD_API_URL": discord.url,
           "DISCORD_GATEWAY_URL": discord.gateway_url}
    processes = []
    with (tmp_path / "discord.log").open("w") as log:
        try:
            for shard in (0, 1):
                processes.append(await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "bots", "discord", "--shard-ids", str(shard),
                    "--shard-count", "2", env={**env, "SWITCHBOARD_DATA_DIR":
                                               str(tmp_path / f"var{shard}")},
                    cwd=ROOT, stdout=asyncio.subprocess.DEVNULL, stderr=log))
            await discord.connected(count=2, wait_s=60)
            assert sorted(s.shard for s in discord.sessions if s.shard) == [(0, 2), (1, 2)]
            for guild, channel in zip(guilds, channels, strict=True):
                await discord.dispatch("MESSAGE_CREATE", discord.message_event(
                    guild, channel, ALICE, f"hello from {guild}"))
            for guild, channel in zip(guilds, channels, strict=True):
                await wait_for(lambda c=channel, g=guild: [
                    m for m in final_texts(discord, c) if f"hello from {g}" in m["content"]])
        finally:
            for process in processes:
                if process.returncode is None:
                    process.terminate()
            for process in processes:
                await asyncio.wait_for(process.wait(), 30)
            await discord_runner.cleanup()
            await llm_runner.cleanup()


def test_bad_shard_options_are_refused() -> None:
    import subprocess
    done = subprocess.run([sys.executable, "-m", "bots", "discord", "--shard-ids", "3",
                           "--shard-count", "2"], cwd=ROOT, capture_output=True, text=True,
                          timeout=60, env={"PATH": "/usr/bin:/bin"})
    assert done.returncode == 2 and "between 0 and 1" in done.stderr
