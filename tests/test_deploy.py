"""``switchboard deploy plan|apply`` as an operator runs it, against a real MongoDB-wire
server, the local Qdrant, and the Slack and Discord stand-ins: a fresh deployment is
planned (drift, exit 2) and applied (in sync, exit 0); then each kind of drift is made —
a tenant file changed, an index dropped, a stray Discord command registered, scopes
missing from the Slack installation, the scheduler's jobs not matching — and detected,
and what apply can repair is repaired. An environment's overlay is read, and a secret it
names that is not set makes the plan fail (exit 1)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from pymongo import AsyncMongoClient

from tests.fakes.discord_api import FakeDiscord, start_fake_discord
from tests.fakes.slack_api import FakeSlack, start_fake_slack

ROOT = Path(__file__).resolve().parent.parent
GUILD = "912345678901234567"
TENANT = """id = "acme"
name = "Acme"
[slack]
team_ids = ["T0ACME"]
bot_token_env = "ACME_SLACK_BOT_TOKEN"
[discord]
guild_ids = ["{guild}"]
[knowledge]
sources = [{{ path = "{kb}" }}]
{extra}"""


@dataclass
class World:
    home: Path
    env: dict[str, str]
    discord: FakeDiscord
    slack: FakeSlack
    database: str
    mongo_uri: str

    def write(self, extra: str = "") -> None:
        (self.home / "tenants" / "acme.toml").write_text(
            TENANT.format(guild=GUILD, kb=self.home / "kb", extra=extra))

    async def deploy(self, *args: str) -> tuple[int, str]:
        result = await asyncio.to_thread(
            subprocess.run, [sys.executable, "-m", "bots", "deploy", *args], env=self.env,
            capture_output=True, text=True, cwd=ROOT, timeout=180)
        return result.returncode, result.stdout + result.stderr


@pytest.fixture
async def world(tmp_path: Path, mongo_uri: str) -> AsyncIterator[World]:
    discord, slack = FakeDiscord(), FakeSlack()
    discord_runner = await start_fake_discord(discord)
    slack_runner = await start_fake_slack(slack)
    (tmp_path / "tenants" / "prod").mkdir(parents=True)
    (tmp_path / "kb").mkdir()
    (tmp_path / "kb" / "refunds.md").write_text("# Refunds\n\nRefunds take five days.")
    split = urlsplit(mongo_uri)
    database = f"deploy_{uuid.uuid4().hex[:8]}"
    env = {"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1",
           "SWITCHBOARD_TENANTS_DIR": str(tmp_path / "tenants"),
           "SWITCHBOARD_DATA_DIR": str(tmp_path / "var"),
           "MONGODB_URI": f"{split.scheme}://{split.netloc}/{database}",
           "DISCORD_BOT_TOKEN": "fake-bot-token", "DISCORD_API_URL": discord.url,
           "SLACK_API_URL": slack.url + "/", "ACME_SLACK_BOT_TOKEN": "xoxb-acme"}
    built = World(tmp_path, env, discord, slack, database, mongo_uri)
    built.write()
    yield built
    await discord_runner.cleanup()
    await slack_runner.cleanup()


async def test_plan_finds_each_kind_of_drift_and_apply_repairs_it(world: World) -> None:
    code, out = await world.deploy("plan")
    assert code == 2, out
    assert "(shared): mongodb index: messages.tenant_time is missing" in out
    assert "acme: qdrant collection: knowledge base 'default' has no collection" in out
    assert f"acme: discord commands: guild {GUILD}: missing: " in out
    assert world.discord.guild_commands == {}  # plan changed nothing

    code, out = await world.deploy("apply")
    assert code == 0, out
    assert "after apply: in sync" in out
    assert {c["name"] for c in world.discord.guild_commands[GUILD]} >= {"help", "stats"}
    code, out = await world.deploy("plan", "--all")
    assert code == 0 and "In sync" in out, out

    # a tenant file changes (a command turned off), an index is dropped, and someone
    # registers a command of their own in the guild
    world.write('[commands]\nenabled = ["help", "sources", "whoami"]\n')
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(world.mongo_uri)
    [audit_index] = [i["name"] async for i in
                     await client[world.database]["audit"].list_indexes()
                     if i["name"] != "_id_"]
    await client[world.database]["audit"].drop_index(audit_index)
    world.discord.guild_commands[GUILD].append(
        {"id": "1", "name": "stray", "description": "not ours", "options": []})
    code, out = await world.deploy("plan", "acme")
    assert code == 2, out
    assert "(shared): mongodb index: audit.tenant_time is missing" in out
    assert "stray: " in out and "stats" in out and "stray" in out
    code, out = await world.deploy("apply", "acme")
    assert code == 0, out
    names = {c["name"] for c in world.discord.guild_commands[GUILD]}
    assert names == {"help", "sources", "whoami"}
    indexes = [i async for i in await client[world.database]["audit"].list_indexes()]
    assert any(list(i["key"]) == ["tenant", "at"] for i in indexes)
    await client.close()


async def test_what_only_a_person_can_fix_is_said_and_left(world: World) -> None:
    world.slack.scopes["xoxb-acme"] = "chat:write,commands"
    code, out = await world.deploy("apply")
    assert code == 2, out
    assert "acme: slack scopes: the installation lacks app_mentions:read" in out
    assert "reinstall the app" in out


async def test_the_scheduler_s_jobs_are_compared_with_the_schedules(world: World) -> None:
    (world.home / "tenants" / "acme.toml").write_text(TENANT.format(
        guild=GUILD, kb=world.home / "kb", extra="").replace(
        f'{{ path = "{world.home / "kb"}" }}',
        f'{{ path = "{world.home / "kb"}", schedule = "0 3 * * *" }}'))
    code, out = await world.deploy("plan")
    assert "acme: scheduled jobs: 1 scheduled sources, but no scheduler has recorded" in out
    # the scheduler's own recording, from the same tenant files
    from apscheduler.schedulers.asyncio import AsyncIOScheduler

    from bots.scheduler import record_jobs, sync_ingest_jobs
    from core.stores.mongo_client import MongoConnection
    from core.tenants.registry import TenantRegistry

    @dataclass
    class Recorder:
        mongo: MongoConnection
    registry = TenantRegistry(world.home / "tenants")
    registry.reload()
    scheduler = AsyncIOScheduler(timezone="UTC")

    async def job(*_: str) -> None:
        return None
    sync_ingest_jobs(scheduler, registry, job)
    scheduler.start(paused=True)
    mongo = MongoConnection(world.env["MONGODB_URI"])
    await record_jobs(scheduler, Recorder(mongo))  # type: ignore[arg-type]
    code, out = await world.deploy("plan")
    assert "scheduled jobs" not in out, out
    # the files change; the scheduler has not caught up
    (world.home / "tenants" / "acme.toml").write_text(
        (world.home / "tenants" / "acme.toml").read_text().replace("0 3 * * *", "30 4 * * *"))
    code, out = await world.deploy("plan")
    assert "acme: scheduled jobs: the scheduler runs" in out and code == 2, out
    scheduler.shutdown(wait=False)
    await mongo.close()


async def test_an_environment_overlay_is_read_and_its_secrets_checked(world: World) -> None:
    (world.home / "tenants" / "prod" / "acme.toml").write_text(
        '[api]\nkey_env = "ACME_PROD_API_KEY"\n')
    code, out = await world.deploy("plan", "--env", "prod")
    assert code == 1, out
    assert "acme: secret: api.key_env names ACME_PROD_API_KEY, which is not set here" in out
    code, out = await world.deploy("plan", "--env", "stage")
    assert code == 1 and "no overlay folder for the environment 'stage'" in out, out


async def test_a_running_serve_on_the_embedded_stores_is_named_not_fought(
        world: World) -> None:
    from bots import local_control
    data = Path(world.env["SWITCHBOARD_DATA_DIR"])  # write() makes the folder
    control = await asyncio.to_thread(local_control.write, data, "http://127.0.0.1:1")
    try:
        env = {k: v for k, v in world.env.items() if k != "MONGODB_URI"}
        result = await asyncio.to_thread(
            subprocess.run, [sys.executable, "-m", "bots", "deploy", "plan"], env=env,
            capture_output=True, text=True, cwd=ROOT, timeout=120)
    finally:
        await asyncio.to_thread(local_control.remove, data, control)
    assert result.returncode == 1 and "a running serve holds the embedded stores" in \
        result.stdout, result.stdout + result.stderr
