"""Slack events: messages and mentions become turns, edits and deletions update them,
an uninstall forgets the workspace's token. The tenant is the one ``authorize``
decided (``authority.py``), carried on every message built here."""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any, cast

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.authority import SlackAuthority, is_external_actor
from adapters.slack.credentials import SlackCredentials
from adapters.slack.delivery import thread_delivery
from adapters.slack.files import wants_ingest, with_fetch
from adapters.slack.inbound import deleted, edited, mentions, to_inbound, workspace_roles
from adapters.slack.payloads import EventCallback, SlackMessageEvent
from core.engine import Engine
from core.messages import CommandCall
from core.tenants.models import TenantConfig

log = logging.getLogger("switchboard.slack")


class SlackEvents:
    def __init__(self, engine: Engine, credentials: SlackCredentials, api_url: str) -> None:
        self._engine = engine
        self._credentials = credentials
        self._api_url = api_url

    async def on_message(self, body: EventCallback, client: AsyncWebClient,
                         context: dict[str, Any], authority: SlackAuthority) -> None:
        bot_user = str(context.get("bot_user_id") or "")
        tenant = authority.tenant
        external = is_external_actor(body, context, authority)
        if external and tenant.slack.external_users != "answer":
            return
        raw: dict[str, Any] = dict(body)
        event = body.get("event") or cast(SlackMessageEvent, {})
        if event.get("subtype") in ("message_changed", "message_deleted"):
            await self._on_change(raw, client, bot_user, authority)
            return
        message = to_inbound(raw, bot_user, authority.binding(), tenant.id)
        if message is None:
            return
        if not allowed_here(tenant, event):
            return
        if wants_ingest(message, dict(event), tenant) and not external:
            token = str(context.get("bot_token") or "")
            message = replace(message, command=CommandCall("ingest"), author=replace(
                message.author, roles=await workspace_roles(client, message.author.id)),
                attachments=tuple(with_fetch(a, token, tenant.knowledge.max_file_mb,
                                             self._api_url) for a in message.attachments))
        elif event.get("type") == "message" and not await self._wants(
                event, message.thread, bot_user, tenant):
            return
        channel, ts = str(event.get("channel", "")), str(event.get("ts", ""))
        await self._engine.handle(message, thread_delivery(
            client, authority, channel, str(event.get("thread_ts") or ts), message.author.id))

    async def _on_change(self, body: dict[str, Any], client: AsyncWebClient,
                         bot_user: str, authority: SlackAuthority) -> None:
        """An edited question is answered again in the same reply; a deleted question's
        turn leaves the session and its answer is removed."""
        changed = edited(body, bot_user, authority.binding(), authority.tenant.id)
        target = changed or deleted(body, authority.binding(), authority.tenant.id)
        if target is None:
            return
        removed = await self._engine.remove_turn(target)
        if removed is None:
            return
        _, reply_ts = removed
        channel = target.thread.split(":", 1)[0]
        if changed is None:
            if reply_ts:
                try:
                    await client.chat_delete(channel=channel, ts=reply_ts)
                except SlackApiError as exc:
                    log.warning("could not delete the answer: %s",
                                exc.response.get("error", ""))
            return
        thread_ts = changed.thread.split(":", 1)[1]
        await self._engine.handle(changed, thread_delivery(
            client, authority, channel, thread_ts, changed.author.id, reply_ts=reply_ts or None))

    async def on_uninstall(self, body: dict[str, Any], team: str,
                           only_tenant: str | None) -> None:
        """``app_uninstalled`` (or a revoked bot token) deletes the workspace's stored
        installation, so its token is never used again."""
        event = body.get("event", {})
        if event.get("type") == "tokens_revoked" and not (event.get("tokens") or {}).get("bot"):
            return
        removed = False
        installations = self._credentials.installations
        if only_tenant is None and installations is not None:
            removed = await installations.delete("slack", team)
        self._credentials.forget(team)
        log.warning("Slack app %s in workspace %s", "uninstalled" if
                    event.get("type") == "app_uninstalled" else "tokens revoked", team,
                    extra={"team_id": team, "channel": "slack",
                           "installation_removed": removed})

    async def _wants(self, event: SlackMessageEvent, thread: str, bot_user: str,
                     tenant: TenantConfig) -> bool:
        """Plain messages count in DMs and in threads the bot already takes part in;
        a mention elsewhere arrives as ``app_mention`` instead."""
        if event.get("channel_type") == "im":
            return True
        if mentions(event.get("text", ""), bot_user) or not event.get("thread_ts"):
            return False
        if tenant.slack.mentions_only:
            return False
        return await self._engine.conversation_exists(tenant.id, "slack", thread)


def allowed_here(tenant: TenantConfig, event: SlackMessageEvent) -> bool:
    """The tenant's per-channel settings: allowed channels, DMs."""
    settings = tenant.slack
    channel = str(event.get("channel", ""))
    if event.get("channel_type") == "im" or channel.startswith("D"):
        return settings.answer_dms
    return not settings.allowed_channels or channel in settings.allowed_channels
