"""The scheduler's posts to a tenant's admin channel: the weekly digest (usage, cost, top
knowledge gaps, feedback) through the Slack and Discord stand-ins, a post that keeps
failing retried and then dead-lettered, the daily drift check posting what `deploy plan`
finds, and the jobs kept in step with the tenant files."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from adapters.memory import MemoryChannel
from bots.deploy import Deployment
from bots.digest import AdminPoster, run_drift_check, run_weekly_digest
from bots.scheduler import sync_digest_jobs
from bots.settings import Settings
from core.commands.builtins import builtin_commands
from core.knowledge.models import SourceDocument
from core.tenants.registry import TenantRegistry
from tests.conftest import EngineKit, tenant
from tests.fakes.discord_api import FakeDiscord, start_fake_discord
from tests.fakes.slack_api import FakeSlack
from tests.servers import free_port

DIGEST = {"slack_channel": "C0ADMINS1", "discord_channel_id": "912345678901234599"}
CONFIG = tenant("acme", knowledge={"score_threshold": 0.45}, digest=DIGEST,
                slack={"team_ids": ["T0ACME"], "bot_token_env": "ACME_DIGEST_SLACK_TOKEN"},
                discord={"guild_ids": ["912345678901234500"]})


@pytest.fixture
async def discord() -> AsyncIterator[FakeDiscord]:
    fake = FakeDiscord()
    runner = await start_fake_discord(fake)
    yield fake
    await runner.cleanup()


@pytest.fixture
async def kit(make_engine: Callable[..., Any], knowledge: Any,
              monkeypatch: pytest.MonkeyPatch) -> EngineKit:
    monkeypatch.setenv("ACME_DIGEST_SLACK_TOKEN", "xoxb-acme-digest")
    monkeypatch.setenv("DISCORD_BOT_TOKEN", "fake-bot-token")

    async def docs() -> Any:
        yield SourceDocument(source="inline:refunds", title="Refunds",
                             content=b"# Refunds\n\nRefunds are paid within five days.",
                             content_type="text/markdown")
    await knowledge.ingestor.ingest_stream(CONFIG, docs())
    built: EngineKit = await make_engine(CONFIG, knowledge=knowledge)
    chat = MemoryChannel(built.engine, "acme")
    for question in ("How long do refunds take?", "How many weeks of parental leave?",
                     "What is the parental leave policy?"):
        await chat.send(question)
    return built


async def test_the_weekly_digest_reaches_both_admin_channels(
        kit: EngineKit, fake_slack: FakeSlack, discord: FakeDiscord) -> None:
    settings = Settings(slack_api_url=fake_slack.url + "/", discord_api_url=discord.url)
    async with aiohttp.ClientSession() as http:
        poster = AdminPoster(settings, http, kit.mongo.db["dead_letters"], backoff_s=0.01)
        assert await run_weekly_digest(kit.engine, poster, "acme")
    before = len(fake_slack.calls)
    post = [c for c in fake_slack.calls[before - 1:] if c.method == "chat.postMessage"
            and c.payload.get("channel") == "C0ADMINS1"][-1]
    text = str(post.payload["text"])
    assert post.token == "xoxb-acme-digest"
    assert "Weekly digest for Acme" in text and "3 answers" in text
    assert "parental leave" in text and "asked 2 times" in text  # one gap, two wordings
    [message] = [c for c in discord.calls if c.method == "POST"
                 and c.path == f"/channels/{DIGEST['discord_channel_id']}/messages"]
    assert "Weekly digest for Acme" in message.body["content"]
    assert await kit.mongo.db["dead_letters"].count_documents({}) == 0


async def test_a_post_that_keeps_failing_is_retried_then_dead_lettered(kit: EngineKit) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"
    settings = Settings(slack_api_url=nowhere + "/", discord_api_url=nowhere)
    async with aiohttp.ClientSession() as http:
        poster = AdminPoster(settings, http, kit.mongo.db["dead_letters"], backoff_s=0.01)
        assert not await run_weekly_digest(kit.engine, poster, "acme")
    letters = await kit.mongo.db["dead_letters"].find({}, {"_id": 0}).to_list()
    assert {(d["job"], d["where"], d["attempts"]) for d in letters} == {
        ("weekly_digest", "slack", 3), ("weekly_digest", "discord", 3)}
    assert all("Weekly digest" not in d["error"] for d in letters)  # never the text


async def test_the_drift_check_posts_what_deploy_plan_finds(
        kit: EngineKit, knowledge: Any, fake_slack: FakeSlack, discord: FakeDiscord) -> None:
    settings = Settings(slack_api_url=fake_slack.url + "/", discord_api_url=discord.url)
    async with aiohttp.ClientSession() as http:
        poster = AdminPoster(settings, http, kit.mongo.db["dead_letters"], backoff_s=0.01)
        deployment = Deployment(kit.mongo, knowledge, builtin_commands(), http)
        assert await run_drift_check(settings, deployment, poster, kit.engine, "acme")
        posts = [str(c.payload["text"]) for c in fake_slack.of("chat.postMessage")
                 if c.payload.get("channel") == "C0ADMINS1" and "drift" in
                 str(c.payload.get("text"))]
        assert posts and "discord commands: guild 912345678901234500: missing" in posts[-1]
        assert "switchboard deploy apply acme" in posts[-1]


async def test_the_digest_jobs_follow_the_tenant_files() -> None:
    scheduler = AsyncIOScheduler(timezone="UTC")
    scheduler.start(paused=True)  # as in the scheduler process: synced while running

    async def job(tenant_id: str) -> None:
        return None
    weekly = tenant("acme", digest={**DIGEST, "weekday": "fri", "hour": 16})
    quiet = tenant("globex")
    assert sync_digest_jobs(scheduler, TenantRegistry.from_configs(weekly, quiet), job,
                            job) == {"digest:acme", "drift:acme"}
    jobs = {j.id: j.name for j in scheduler.get_jobs()}
    assert jobs == {"digest:acme": "0 16 * * fri", "drift:acme": "0 6 * * *"}
    off = tenant("acme", digest={**DIGEST, "drift_check": False})
    sync_digest_jobs(scheduler, TenantRegistry.from_configs(off, quiet), job, job)
    assert {j.id for j in scheduler.get_jobs()} == {"digest:acme"}
    sync_digest_jobs(scheduler, TenantRegistry.from_configs(quiet), job, job)
    assert scheduler.get_jobs() == []
    scheduler.shutdown(wait=False)
