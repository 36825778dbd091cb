"""The Slack app: slack-bolt's AsyncApp behind ``POST /slack/events``.

Bolt verifies every request's signature (and its 5-minute replay window) before anything
else, answers ``url_verification``, and acknowledges events before the listeners run, so
Slack gets its 200 well inside 3 s. ``authorize`` is where a workspace becomes a tenant:
the team id must be bound in a tenant file, whose bot token comes from the environment
variable it names; an unknown team is refused and logged. Work in progress for issue 4:
OAuth installs, slash commands, interactivity, edits and files come next.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable
from typing import Any

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.app.async_app import AsyncApp
from slack_bolt.authorization import AuthorizeResult
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.delivery import SlackThreadSink, web_client
from adapters.slack.inbound import deleted, edited, mentions, to_inbound
from adapters.slack.render import render
from core.engine import Engine
from core.feedback import Rating
from core.messages import Author, Binding, InboundMessage
from core.replies import Reply
from core.sessions.models import ConversationKey
from core.tenants.registry import TenantRegistry, UnknownTenant

log = logging.getLogger("switchboard.slack")


class ResponseUrlSink:
    """Delivers a command's reply through its ``response_url`` (no streaming there)."""

    def __init__(self, respond: Any) -> None:
        self._respond = respond

    async def delta(self, text: str) -> None:
        return None

    async def finish(self, reply: Reply) -> None:
        for message in render(reply):
            await self._respond(text=message.text, blocks=message.blocks,
                                response_type="ephemeral" if reply.ephemeral else "in_channel",
                                replace_original=False)


class SlackAdapter:
    def __init__(self, engine: Engine, tenants: TenantRegistry, signing_secret: str,
                 api_url: str) -> None:
        self._engine = engine
        self._tenants = tenants
        self._api_url = api_url
        self._bot_users: dict[str, tuple[str, str]] = {}

        # Bolt injects arguments by parameter name, so it is given plain functions.
        async def authorize(enterprise_id: str | None, team_id: str | None
                            ) -> AuthorizeResult | None:
            return await self._authorize(enterprise_id, team_id)

        async def on_message(body: dict[str, Any], client: AsyncWebClient,
                             context: dict[str, Any]) -> None:
            await self._on_message(body, client, context)

        self.app = AsyncApp(signing_secret=signing_secret,
                            authorize=authorize,  # type: ignore[arg-type]  # None = refused
                            client=web_client("", api_url), process_before_response=False,
                            logger=logging.getLogger("switchboard.slack.bolt"))
        async def on_command(ack: Any, body: dict[str, Any], client: AsyncWebClient,
                             respond: Any) -> None:
            await ack()
            await self._on_command(body, client, respond)

        async def on_action(ack: Any, body: dict[str, Any], client: AsyncWebClient) -> None:
            await ack()
            await self._on_action(body, client)

        self.app.action(re.compile(r"^(feedback_up|feedback_down|follow_up_\d+)$"))(on_action)
        self.app.event("app_mention")(on_message)
        self.app.event("message")(on_message)
        self.app.command(re.compile(r"^/[a-z0-9_-]+$"))(on_command)

    async def _authorize(self, enterprise_id: str | None, team_id: str | None
                         ) -> AuthorizeResult | None:
        try:
            tenant = self._tenants.resolve(Binding("slack", team_id or ""))
        except UnknownTenant:
            log.warning("Slack event from a workspace bound to no tenant",
                        extra={"team_id": team_id, "channel": "slack"})
            return None
        token = os.environ.get(tenant.slack.bot_token_env, "") \
            if tenant.slack.bot_token_env else ""
        if not token:
            log.error("tenant has no Slack bot token (slack.bot_token_env)",
                      extra={"tenant": tenant.id, "channel": "slack"})
            return None
        if token not in self._bot_users:
            who = await web_client(token, self._api_url).auth_test()
            self._bot_users[token] = (str(who["user_id"]), str(who.get("bot_id", "")))
        user_id, bot_id = self._bot_users[token]
        return AuthorizeResult(enterprise_id=enterprise_id, team_id=team_id, bot_token=token,
                               bot_user_id=user_id, bot_id=bot_id)

    async def _on_message(self, body: dict[str, Any], client: AsyncWebClient,
                          context: dict[str, Any]) -> None:
        bot_user = str(context.get("bot_user_id") or "")
        if body.get("event", {}).get("subtype") in ("message_changed", "message_deleted"):
            await self._on_change(body, client, bot_user)
            return
        message = to_inbound(body, bot_user)
        if message is None:
            return
        event = body["event"]
        if not self._allowed(body, event):
            return
        if event["type"] == "message" and not await self._wants(event, message.thread,
                                                                 bot_user, body):
            return
        sink = SlackThreadSink(client, event["channel"], event.get("thread_ts") or event["ts"],
                               message.author.id)
        await self._engine.handle(message, sink)

    async def _on_change(self, body: dict[str, Any], client: AsyncWebClient,
                         bot_user: str) -> None:
        """An edited question is answered again in the same reply; a deleted question's
        turn leaves the session and its answer is removed."""
        changed = edited(body, bot_user)
        target = changed or deleted(body)
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
        await self._engine.handle(changed, SlackThreadSink(
            client, channel, thread_ts, changed.author.id, reply_ts=reply_ts or None))

    async def _on_command(self, body: dict[str, Any], client: AsyncWebClient,
                          respond: Any) -> None:
        """``/switchboard <command> args`` runs the registry command; the answer follows
        through ``response_url``, privately or in the channel as the command declares."""
        team = str(body.get("team_id", ""))
        try:
            tenant = self._tenants.resolve(Binding("slack", team))
        except UnknownTenant:
            return
        if body.get("command") != tenant.commands.slack_command:
            return
        user = str(body.get("user_id", ""))
        roles: frozenset[str] = frozenset()
        try:
            info = await client.users_info(user=user)
            person = info.get("user") or {}
            if person.get("is_admin") or person.get("is_owner"):
                roles = frozenset({"platform_admin"})
        except SlackApiError as exc:
            log.warning("users.info failed (%s); treating %s as a member",
                        exc.response.get("error", ""), user)
        except Exception:
            log.warning("users.info failed; treating %s as a member", user, exc_info=True)
        text = str(body.get("text", "")).strip() or "help"
        message = InboundMessage(
            binding=Binding("slack", team),
            thread=f"{body.get('channel_id', '')}:command:{user}",
            author=Author(user, roles=roles), text=f"/{text.lstrip('/')}",
            platform_message_id=f"command:{body.get('trigger_id', '')}")
        await self._engine.handle(message, ResponseUrlSink(respond))

    async def _on_action(self, body: dict[str, Any], client: AsyncWebClient) -> None:
        """A button under an answer: feedback is stored against its turn; a follow-up
        suggestion is asked in the same thread as if the user had typed it."""
        action = body["actions"][0]
        channel = str(body.get("channel", {}).get("id", ""))
        posted = body.get("message", {})
        thread_ts = str(posted.get("thread_ts") or posted.get("ts", ""))
        user = str(body.get("user", {}).get("id", ""))
        message = InboundMessage(
            binding=Binding("slack", str(body.get("team", {}).get("id", ""))),
            thread=f"{channel}:{thread_ts}", author=Author(user),
            text=str(action.get("value", "")),
            platform_message_id=f"action:{action.get('action_ts', '')}")
        if action["action_id"].startswith("follow_up_"):
            await self._engine.handle(message, SlackThreadSink(client, channel, thread_ts, user))
            return
        rating: Rating = "up" if action["action_id"] == "feedback_up" else "down"
        stored = await self._engine.record_feedback(message, message.text, rating)
        try:
            await client.chat_postEphemeral(
                channel=channel, user=user, thread_ts=thread_ts,
                text="Thanks for the feedback!" if stored else
                "Sorry — I couldn't find that answer to record your feedback.")
        except SlackApiError as exc:
            log.warning("could not confirm feedback: %s", exc.response.get("error", ""))

    def _allowed(self, body: dict[str, Any], event: dict[str, Any]) -> bool:
        """The tenant's per-channel settings: allowed channels, DMs."""
        try:
            settings = self._tenants.resolve(
                Binding("slack", str(body.get("team_id", "")))).slack
        except UnknownTenant:
            return False
        if event.get("channel_type") == "im" or str(event.get("channel", "")).startswith("D"):
            return settings.answer_dms
        return not settings.allowed_channels or event["channel"] in settings.allowed_channels

    async def _wants(self, event: dict[str, Any], thread: str, bot_user: str,
                     body: dict[str, Any]) -> bool:
        """Plain messages count in DMs and in threads the bot already takes part in;
        a mention elsewhere arrives as ``app_mention`` instead."""
        if event.get("channel_type") == "im":
            return True
        if mentions(event.get("text", ""), bot_user) or not event.get("thread_ts"):
            return False
        try:
            tenant = self._tenants.resolve(Binding("slack", str(body.get("team_id", ""))))
        except UnknownTenant:
            return False
        if tenant.slack.mentions_only:
            return False
        key = ConversationKey(tenant.id, "slack", thread)
        return bool(await self._engine.deps.sessions.recent(key, 1))


def mount(app: web.Application, adapter: Callable[[], SlackAdapter | None]) -> None:
    async def events(request: web.Request) -> web.StreamResponse:
        slack = adapter()
        if slack is None:
            return web.json_response({"error": "Slack is not configured: set "
                                               "SLACK_SIGNING_SECRET"}, status=503)
        response = await slack.app.async_dispatch(await to_bolt_request(request))
        return await to_aiohttp_response(response)

    app.router.add_post("/slack/events", events)
