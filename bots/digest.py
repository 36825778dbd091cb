"""What the scheduler tells each tenant's admins in their channel (``[digest]``): a weekly
digest — usage, cost, the top knowledge gaps, feedback — and, daily, the deployment drift
``deploy plan`` finds for the tenant, when it finds any.

Posting goes through the platforms' own Web APIs with the tenant's bot (Slack
``chat.postMessage`` through the adapter's own slack-sdk client, Discord's
create-message). A post is tried ``ATTEMPTS`` times with
growing pauses; a job that still fails leaves a dead-letter record in MongoDB
(``dead_letters``: the job, the tenant, where, the last error, when — never the text)
for operators, and is counted in ``switchboard_digest_posts_total{outcome="dead_letter"}``.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError

from adapters.slack.delivery import web_client
from bots.settings import Settings
from core.engine import Engine
from core.tenants.models import TenantConfig
from observability import metrics

log = logging.getLogger("switchboard.digest")

ATTEMPTS = 3


@dataclass(slots=True)
class AdminPoster:
    """Posts into a tenant's admin channels, with retries and dead letters."""

    settings: Settings
    http: aiohttp.ClientSession
    dead_letters: Any
    """The MongoDB collection dead letters go to."""
    backoff_s: float = 2.0

    async def post(self, tenant: TenantConfig, text: str, job: str) -> bool:
        """True when every configured channel took the message."""
        targets = []
        if tenant.digest.slack_channel:
            targets.append(("slack", self._slack))
        if tenant.digest.discord_channel_id:
            targets.append(("discord", self._discord))
        delivered = True
        for where, send in targets:
            error = ""
            for attempt in range(1, ATTEMPTS + 1):
                try:
                    await send(tenant, text)
                    error = ""
                    break
                except (aiohttp.ClientError, TimeoutError, RuntimeError) as exc:
                    error = f"{type(exc).__name__}: {exc}"[:300]
                    log.warning("%s post for %s failed (attempt %d): %s", job, where, attempt,
                                error, extra={"tenant": tenant.id, "channel": where})
                    if attempt < ATTEMPTS:
                        await asyncio.sleep(self.backoff_s * 2 ** (attempt - 1))
            if error:
                delivered = False
                metrics.DIGEST_POSTS.labels(tenant.id, job, "dead_letter").inc()
                await self._dead_letter(tenant, job, where, error)
            else:
                metrics.DIGEST_POSTS.labels(tenant.id, job, "posted").inc()
        return delivered

    async def _slack(self, tenant: TenantConfig, text: str) -> None:
        token = os.environ.get(tenant.slack.bot_token_env, "") if tenant.slack.bot_token_env \
            else ""
        if not token:
            raise RuntimeError("the tenant's Slack bot token (slack.bot_token_env) is not set")
        try:
            await web_client(token, self.settings.slack_api_url).chat_postMessage(
                channel=tenant.digest.slack_channel, text=text, unfurl_links=False,
                unfurl_media=False)
        except SlackApiError as exc:
            raise RuntimeError(f"Slack answered {exc.response.get('error', '')}") from None

    async def _discord(self, tenant: TenantConfig, text: str) -> None:
        token = os.environ.get(tenant.discord.bot_token_env or "DISCORD_BOT_TOKEN", "")
        if not token:
            raise RuntimeError("no Discord bot token for the tenant")
        url = (f"{self.settings.discord_api_url.rstrip('/')}/channels/"
               f"{tenant.digest.discord_channel_id}/messages")
        async with self.http.post(url, headers={"Authorization": f"Bot {token}"},
                                  json={"content": text[:2000], "flags": 4}) as r:  # no embeds
            if r.status >= 300:
                raise RuntimeError(f"Discord answered {r.status}")

    async def _dead_letter(self, tenant: TenantConfig, job: str, where: str,
                           error: str) -> None:
        try:
            await self.dead_letters.insert_one({
                "job": job, "tenant": tenant.id, "where": where, "error": error,
                "attempts": ATTEMPTS, "at": datetime.now(UTC)})
        except Exception as exc:
            log.error("could not record the dead letter of %s: %s", job, exc,
                      extra={"tenant": tenant.id})


async def weekly_digest_text(engine: Engine, tenant: TenantConfig) -> str:
    console = engine.console
    overview = await console.overview(tenant, 7)
    gaps = await console.gaps(tenant, 7)
    since = datetime.now(UTC) - timedelta(days=7)
    ratings = [r for r in await console.feedback(tenant, 500)
               if isinstance(r.get("at"), datetime) and r["at"].replace(tzinfo=UTC) >= since]
    up = sum(1 for r in ratings if r.get("rating") == "up")
    lines = [f"*Weekly digest for {tenant.name}* (last 7 days)",
             f"• {overview.turns} answers to {sum(d.users for d in overview.days)} "
             f"user-days; {int(overview.total('cited'))} cited a source, "
             f"{int(overview.total('no_source'))} found none, "
             f"{int(overview.total('failed'))} failed",
             f"• {int(overview.total('tokens')):,} tokens, about "
             f"${overview.total('cost_usd'):.2f}"]
    if overview.month is not None and tenant.llm.monthly_token_budget:
        share = 100 * overview.month.tokens / tenant.llm.monthly_token_budget
        lines.append(f"• this month: {overview.month.tokens:,} of "
                     f"{tenant.llm.monthly_token_budget:,} tokens ({share:.0f} %)")
    lines.append(f"• feedback: {up} helpful, {len(ratings) - up} not helpful")
    if gaps:
        lines.append("*Top knowledge gaps* (questions with no good source):")
        lines += [f"  {n}. {gap.label} — asked {gap.count} times" for n, gap in
                  enumerate(gaps[:5], start=1)]
    else:
        lines.append("No knowledge gaps this week.")
    lines.append("Details: the console's Knowledge gaps page (/admin).")
    return "\n".join(lines)


async def run_weekly_digest(engine: Engine, poster: AdminPoster, tenant_id: str) -> bool:
    tenant = engine.tenant(tenant_id)
    if not tenant.digest.configured:
        return False
    return await poster.post(tenant, await weekly_digest_text(engine, tenant), "weekly_digest")


def drift_text(tenant: TenantConfig, findings: Sequence[Any]) -> str:
    lines = [f"*Deployment drift for {tenant.name}*: `switchboard deploy plan {tenant.id}` "
             "finds:"]
    lines += [f"• {f.what}: {f.detail}" for f in findings[:15]]
    if any(f.repair is not None for f in findings):
        lines.append(f"`switchboard deploy apply {tenant.id}` repairs what can be repaired.")
    return "\n".join(lines)


async def run_drift_check(settings: Settings, deployment: Any, poster: AdminPoster,
                          engine: Engine, tenant_id: str) -> bool:
    """Post the tenant's drift, if any; True when something was posted."""
    from bots.deploy import make_plan
    tenant = engine.tenant(tenant_id)
    if not (tenant.digest.configured and tenant.digest.drift_check):
        return False
    plan = await make_plan(settings, "", [tenant_id], deployment, loaded=[tenant])
    findings = [f for f in plan.findings if f.tenant == tenant_id]
    if not findings:
        return False
    await poster.post(tenant, drift_text(tenant, findings), "drift_check")
    return True
