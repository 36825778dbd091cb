"""``switchboard discord``: the gateway process for every tenant's guilds.

One client runs on the shared ``DISCORD_BOT_TOKEN`` for tenants without a bot of their
own; each tenant that names ``discord.bot_token_env`` gets a client of its own. The REST
and gateway endpoints come from ``DISCORD_API_URL`` and ``DISCORD_GATEWAY_URL`` (tests
point them at a local stand-in). A shared bot in many guilds can spread its shards over
several processes: ``--shard-ids 0,1 --shard-count 4`` here, ``--shard-ids 2,3`` on
another; Discord routes each guild's events to one shard.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import discord
import prometheus_client
import yarl
from discord.gateway import DiscordWebSocket
from discord.http import Route

from adapters.discord.bot import DiscordAdapter
from bots.bootstrap import Services, open_services
from bots.settings import Settings
from core.intake.recovery import Recovery, Redeliver
from core.turns.chain import Delivery

log = logging.getLogger("switchboard.discord")
SHARD_FROM = 1000
"""Bound guilds from which the shared bot runs sharded (Discord requires it at 2,500)."""



def redeliver_discord(adapters: list[DiscordAdapter]) -> Redeliver:
    """Journaled Discord turns go back out through the bot that took them."""
    by_key = {adapter.bot_key: adapter for adapter in adapters}

    async def redeliver(address: Mapping[str, Any]) -> Delivery | None:
        adapter = by_key.get(str(address.get("bot", "")))
        if address.get("kind") != "discord-channel" or adapter is None:
            return None
        return await adapter.redelivery(dict(address))

    return redeliver


def point_at(settings: Settings) -> None:
    Route.BASE = settings.discord_api_url.rstrip("/")
    if settings.discord_gateway_url:
        DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(settings.discord_gateway_url)


def serve_metrics() -> None:
    """This process has no web server: ``SWITCHBOARD_METRICS_PORT`` exposes its
    Prometheus metrics (rate limits, turns, stages) on 127.0.0.1."""
    port = os.environ.get("SWITCHBOARD_METRICS_PORT", "")
    if port:
        prometheus_client.start_http_server(int(port), addr="127.0.0.1")
        log.info("metrics on http://127.0.0.1:%s/metrics", port)


@dataclass(frozen=True, slots=True)
class Shards:
    """Which of the shared bot's shards this process runs (all when ``count`` is 0)."""

    ids: tuple[int, ...] = ()
    count: int = 0

    @classmethod
    def parse(cls, ids: str, count: int) -> Shards:
        if not ids and not count:
            return cls()
        if not ids or count < 1:
            raise ValueError("give --shard-ids and --shard-count together")
        try:
            parsed = tuple(sorted({int(i) for i in ids.split(",") if i.strip()}))
        except ValueError:
            raise ValueError(f"--shard-ids must be numbers like 0,1 (got {ids!r})") from None
        if not parsed or any(not 0 <= i < count for i in parsed):
            raise ValueError(f"--shard-ids must be between 0 and {count - 1}")
        return cls(parsed, count)

    @property
    def journal(self) -> str:
        """Each set of shards keeps its own intake journal."""
        return "discord" if not self.count else \
            f"discord-{'-'.join(map(str, self.ids))}-of-{self.count}"


def discord_bots(services: Services, shards: Shards = Shards()
                 ) -> list[tuple[DiscordAdapter, str]]:
    """A client on the shared token (if set) and one per tenant that names its own;
    a tenant whose variable is unset is logged and skipped."""
    bots: list[tuple[DiscordAdapter, str]] = []
    shared = os.environ.get("DISCORD_BOT_TOKEN", "")
    if shared:
        guilds = sum(len(services.tenants.get(t).discord.guild_ids)
                     for t in services.tenants.tenant_ids())
        sharded = os.environ.get("DISCORD_SHARDED", "") == "1" or guilds >= SHARD_FROM \
            or bool(shards.count)
        bots.append((DiscordAdapter(services.engine, sharded=sharded,
                                    shard_ids=shards.ids, shard_count=shards.count), shared))
    for tenant_id in services.tenants.tenant_ids():
        env = services.tenants.get(tenant_id).discord.bot_token_env
        if not env:
            continue
        token = os.environ.get(env, "")
        if not token:
            log.error("tenant %s names %s for its Discord bot token, but it is unset",
                      tenant_id, env, extra={"tenant": tenant_id, "channel": "discord"})
            continue
        bots.append((DiscordAdapter(services.engine, only_tenant=tenant_id), token))
    return bots


def discord_configured(services: Services) -> bool:
    """Whether there is a Discord bot to run: the shared token, or a tenant naming one."""
    return bool(os.environ.get("DISCORD_BOT_TOKEN")) or any(
        services.tenants.get(t).discord.bot_token_env for t in services.tenants.tenant_ids())


async def run_discord(settings: Settings, shards: Shards = Shards()) -> int:
    point_at(settings)
    serve_metrics()
    async with open_services(settings, watch_tenants=True,
                             journal=shards.journal) as services:
        bots = discord_bots(services, shards)
        if not bots:
            print("switchboard discord: no bot token. Set DISCORD_BOT_TOKEN, or name a "
                  "variable in a tenant's [discord] bot_token_env (see docs/discord.md).",
                  file=sys.stderr)
            return 2
        recover = Recovery(services.engine, redeliver_discord([adapter for adapter, _ in bots]))
        recovery = asyncio.create_task(recover.run(services.orphans))
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        runs = [asyncio.create_task(bot.client.start(token)) for bot, token in bots]
        waiter = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait([*runs, waiter], return_when=asyncio.FIRST_COMPLETED)
        failed = [t for t in done if t is not waiter and t.exception() is not None]
        for bot, _ in bots:
            await bot.client.close()
        for task in [*runs, waiter, recovery]:
            task.cancel()
        await asyncio.gather(*runs, waiter, recovery, return_exceptions=True)
        for task in failed:
            exc = task.exception()
            if isinstance(exc, discord.LoginFailure):
                print(f"switchboard discord: Discord refused a bot token ({exc}).",
                      file=sys.stderr)
            else:
                log.error("Discord client stopped: %r", exc, exc_info=exc)
            return 1
    return 0
