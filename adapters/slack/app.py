"""The Slack app: slack-bolt's AsyncApp behind ``POST /slack/events``.

Every request's signature (and its 5-minute replay window) is verified on the raw bytes
before bolt sees it (``routes.dispatch``, ``envelope.verify``). Bolt answers
``url_verification``, and acknowledges events before the listeners run, so
Slack gets its 200 well inside 3 s. ``authorize`` is the one place a workspace becomes
a tenant (``adapters/slack/authority.py``): the authorized workspace must be bound in a
tenant file, and the tenant decided there travels on every message the listeners build;
no other field of the body is consulted. The bot token comes from
``adapters/slack/credentials.py``. An unknown team is refused and logged.

A tenant may bring its own Slack app: its events arrive at ``/slack/events/<tenant>``,
signed with the secret named by ``slack.signing_secret_env``, and are accepted only for
that tenant's own workspaces — a signature by one tenant's app never speaks for another.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, replace
from typing import Any

from slack_bolt.app.async_app import AsyncApp
from slack_bolt.authorization import AuthorizeResult
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.authority import (
    CONTEXT_KEY,
    RefusedWorkspace,
    SlackAuthority,
    authority_of,
    decide,
    is_external_actor,
    is_external_clicker,
)
from adapters.slack.credentials import SlackCredentials
from adapters.slack.delivery import SlackThreadDelivery, web_client
from adapters.slack.files import FILE_ID, shared_file, wants_ingest, with_fetch
from adapters.slack.inbound import clean_text, deleted, edited, mentions, to_inbound
from adapters.slack.installations import MongoInstallationStore
from adapters.slack.render import render
from core.engine import Engine, Rating, UnknownTenant
from core.messages import Attachment, Author, CommandCall, InboundMessage
from core.replies import Reply
from core.tenants.models import TenantConfig
from core.turns.events import NOTHING, FinalReply, Receipt, TurnEvent, TurnFailed

log = logging.getLogger("switchboard.slack")


@dataclass(frozen=True, slots=True)
class SignedApp:
    """A bolt app and the secret its requests are signed with (checked on the raw bytes
    before bolt sees them, see ``adapters/slack/envelope.py``)."""

    signing_secret: str
    bolt: AsyncApp


class ResponseUrlDelivery:
    """Delivers a command's reply through its ``response_url``. A response URL takes
    only a few posts, so nothing streams there: Slack shows the command itself until
    the reply arrives, and the tools the model used are listed under it."""

    address: dict[str, object] = {}

    def __init__(self, respond: Any) -> None:
        self._respond = respond

    async def deliver(self, event: TurnEvent) -> Receipt:
        if isinstance(event, FinalReply | TurnFailed):
            await self._finish(event.reply)
        return NOTHING

    async def _finish(self, reply: Reply) -> None:
        for message in render(reply):
            await self._respond(text=message.text, blocks=message.blocks,
                                response_type="ephemeral" if reply.ephemeral else "in_channel",
                                replace_original=False)


class SlackAdapter:
    def __init__(self, engine: Engine, *, api_url: str,
                 signing_secret: str = "",
                 installations: MongoInstallationStore | None = None) -> None:
        self._engine = engine
        self._api_url = api_url
        self._credentials = SlackCredentials(api_url, installations)
        self._own: dict[str, SignedApp] = {}
        self.shared = SignedApp(signing_secret, self._build(signing_secret, None)) \
            if signing_secret else None

    def own_app(self, tenant_id: str) -> SignedApp | None:
        """The app of a tenant that brings its own Slack app, or None if it does not."""
        try:
            tenant = self._engine.tenant(tenant_id)
        except UnknownTenant:
            return None
        env = tenant.slack.signing_secret_env
        secret = os.environ.get(env, "") if env else ""
        if not secret:
            return None
        cached = self._own.get(tenant_id)
        if cached is None or cached.signing_secret != secret:
            cached = SignedApp(secret, self._build(secret, tenant_id))
            self._own[tenant_id] = cached
        return cached

    def forget_installation(self, team_id: str) -> None:
        self._credentials.forget(team_id)

    def _build(self, signing_secret: str, only_tenant: str | None) -> AsyncApp:
        """One bolt app and its listeners. Bolt injects arguments by parameter name, so
        it is given plain functions rather than bound methods."""

        async def authorize(context: dict[str, Any], enterprise_id: str | None,
                            team_id: str | None) -> AuthorizeResult | None:
            return await self._authorize(context, enterprise_id, team_id, only_tenant)

        async def on_message(body: dict[str, Any], client: AsyncWebClient,
                             context: dict[str, Any]) -> None:
            await self._on_message(body, client, context)

        async def on_command(ack: Any, body: dict[str, Any], client: AsyncWebClient,
                             respond: Any, context: dict[str, Any]) -> None:
            await ack()
            await self._on_command(body, client, respond, context)

        async def on_action(ack: Any, body: dict[str, Any], client: AsyncWebClient,
                            context: dict[str, Any]) -> None:
            await ack()
            await self._on_action(body, client, context)

        async def on_shortcut(ack: Any, body: dict[str, Any], client: AsyncWebClient,
                              context: dict[str, Any]) -> None:
            await ack()
            await self._on_shortcut(body, client, context)

        async def on_uninstall(body: dict[str, Any], context: dict[str, Any]) -> None:
            # Bolt skips ``authorize`` for these two events (the token may be gone). The
            # workspace is the one bolt extracted from the signed body (the installation
            # the event was delivered for); only the shared app stores installations.
            workspace = str(context.get("team_id") or context.get("enterprise_id") or "")
            await self._on_uninstall(body, workspace, only_tenant)

        # Requests reach bolt only through ``routes.dispatch``, which has verified the
        # signature on the raw bytes (``envelope.verify``); bolt's own check of the same
        # HMAC over the decoded text would be the second one per request.
        app = AsyncApp(signing_secret=signing_secret, request_verification_enabled=False,
                       authorize=authorize,  # type: ignore[arg-type]  # None = refused
                       client=web_client("", self._api_url), process_before_response=False,
                       logger=logging.getLogger("switchboard.slack.bolt"))
        app.action(re.compile(r"^(feedback_up|feedback_down|follow_up_\d+)$"))(on_action)
        app.event("app_mention")(on_message)
        app.event("message")(on_message)
        app.shortcut("ask_switchboard")(on_shortcut)
        app.event("app_uninstalled")(on_uninstall)
        app.event("tokens_revoked")(on_uninstall)
        app.command(re.compile(r"^/[a-z0-9_-]+$"))(on_command)
        return app

    async def _authorize(self, context: dict[str, Any], enterprise_id: str | None,
                         team_id: str | None, only_tenant: str | None
                         ) -> AuthorizeResult | None:
        try:
            authority = decide(self._engine.tenant_for, team_id, enterprise_id, only_tenant)
        except RefusedWorkspace as exc:
            log.warning("Slack request refused: %s", exc, extra={
                "team_id": team_id or "", "enterprise_id": enterprise_id or "",
                "channel": "slack", **({"tenant": only_tenant} if only_tenant else {})})
            return None
        credentials = await self._credentials.for_authority(authority)
        if credentials is None:
            return None
        context[CONTEXT_KEY] = authority
        return AuthorizeResult(enterprise_id=enterprise_id, team_id=team_id,
                               bot_token=credentials.token,
                               bot_user_id=credentials.bot_user_id,
                               bot_id=credentials.bot_id)

    @staticmethod
    def _sink(client: AsyncWebClient, authority: SlackAuthority, channel: str,
              thread_ts: str, user: str, reply_ts: str | None = None) -> SlackThreadDelivery:
        return SlackThreadDelivery(client, channel, thread_ts, user, reply_ts=reply_ts, address={
            "tenant": authority.tenant.id, "workspace": authority.workspace,
            "own_app": authority.own_app})

    async def redelivery(self, address: dict[str, object]) -> SlackThreadDelivery | None:
        """A sink for a journaled address: the same thread, with the workspace's current
        token. None when the workspace or its token is gone."""
        try:
            tenant = self._engine.tenant(str(address.get("tenant", "")))
        except UnknownTenant:
            return None
        authority = SlackAuthority(tenant, str(address.get("workspace", "")),
                                   own_app=bool(address.get("own_app")))
        credentials = await self._credentials.for_authority(authority)
        if credentials is None:
            return None
        return SlackThreadDelivery(
            web_client(credentials.token, self._api_url), str(address.get("channel", "")),
            str(address.get("thread_ts", "")), str(address.get("user", "")),
            address=dict(address), resume_existing=True)

    async def _on_uninstall(self, body: dict[str, Any], team: str,
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
        self.forget_installation(team)
        log.warning("Slack app %s in workspace %s", "uninstalled" if
                    event.get("type") == "app_uninstalled" else "tokens revoked", team,
                    extra={"team_id": team, "channel": "slack",
                           "installation_removed": removed})

    async def _on_message(self, body: dict[str, Any], client: AsyncWebClient,
                          context: dict[str, Any]) -> None:
        bot_user = str(context.get("bot_user_id") or "")
        authority = authority_of(context)
        tenant = authority.tenant
        external = is_external_actor(body, context, authority)
        if external and tenant.slack.external_users != "answer":
            return
        if body.get("event", {}).get("subtype") in ("message_changed", "message_deleted"):
            await self._on_change(body, client, bot_user, authority)
            return
        message = to_inbound(body, bot_user, authority.binding(), tenant.id)
        if message is None:
            return
        event = body["event"]
        if not _allowed(tenant, event):
            return
        if wants_ingest(message, event, tenant) and not external:
            token = str(context.get("bot_token") or "")
            message = replace(message, command=CommandCall("ingest"), author=replace(
                message.author, roles=await self._roles(client, message.author.id)),
                attachments=tuple(with_fetch(a, token, tenant.knowledge.max_file_mb,
                                             self._api_url) for a in message.attachments))
        elif event["type"] == "message" and not await self._wants(event, message.thread,
                                                                   bot_user, tenant):
            return
        sink = self._sink(client, authority, event["channel"],
                          event.get("thread_ts") or event["ts"], message.author.id)
        await self._engine.handle(message, sink)

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
        await self._engine.handle(changed, self._sink(
            client, authority, channel, thread_ts, changed.author.id, reply_ts=reply_ts or None))

    async def _on_command(self, body: dict[str, Any], client: AsyncWebClient,
                          respond: Any, context: dict[str, Any]) -> None:
        """``/switchboard <command> args`` runs the registry command; the answer follows
        through ``response_url``, privately or in the channel as the command declares."""
        authority = authority_of(context)
        tenant = authority.tenant
        if body.get("command") != tenant.commands.slack_command:
            return
        user = str(body.get("user_id", ""))
        roles = await self._roles(client, user)
        text = str(body.get("text", "")).strip() or "help"
        files: tuple[Attachment, ...] = ()
        call: CommandCall | None = None  # typed text stays text: the registry parses it
        name, _, rest = text.lstrip("/").partition(" ")
        file_id = FILE_ID.search(rest.strip()) if name == "ingest" else None
        if file_id is not None:
            found = await shared_file(client, file_id.group(1),
                                      str(context.get("bot_token") or ""), tenant, self._api_url)
            if found is None:
                await respond(text=f"I can't open the file `{file_id.group(1)}`: share it in "
                              "a channel I'm in, then try again.", response_type="ephemeral")
                return
            files, call = (found,), CommandCall("ingest")
        message = InboundMessage(
            binding=authority.binding(), tenant_id=tenant.id,
            thread=f"{body.get('channel_id', '')}:command:{user}",
            author=Author(user, roles=roles), text=f"/{text.lstrip('/')}",
            platform_message_id=f"command:{body.get('trigger_id', '')}", attachments=files,
            command=call)
        await self._engine.handle(message, ResponseUrlDelivery(respond))

    async def _roles(self, client: AsyncWebClient, user: str) -> frozenset[str]:
        """Workspace admins and owners count as platform admins (``users.info``)."""
        try:
            info = await client.users_info(user=user)
            person = info.get("user") or {}
            if person.get("is_admin") or person.get("is_owner"):
                return frozenset({"platform_admin"})
        except SlackApiError as exc:
            log.warning("users.info failed (%s); treating %s as a member",
                        exc.response.get("error", ""), user)
        except Exception:
            log.warning("users.info failed; treating %s as a member", user, exc_info=True)
        return frozenset()

    async def _on_shortcut(self, body: dict[str, Any], client: AsyncWebClient,
                           context: dict[str, Any]) -> None:
        """The "Ask Switchboard" message shortcut: the chosen message is asked in its
        thread on behalf of the person who picked the shortcut."""
        chosen = body.get("message") or {}
        channel = str((body.get("channel") or {}).get("id", ""))
        thread_ts = str(chosen.get("thread_ts") or chosen.get("ts", ""))
        user = str((body.get("user") or {}).get("id", ""))
        text = clean_text(str(chosen.get("text", "")),
                          str(context.get("bot_user_id") or ""))
        if not (channel and thread_ts and text):
            return
        authority = authority_of(context)
        if is_external_clicker(body, authority) and \
                authority.tenant.slack.external_users != "answer":
            return
        message = InboundMessage(
            binding=authority.binding(), tenant_id=authority.tenant.id,
            thread=f"{channel}:{thread_ts}", author=Author(user), text=text,
            platform_message_id=f"shortcut:{body.get('trigger_id', '')}")
        await self._engine.handle(message, self._sink(client, authority, channel, thread_ts,
                                                      user))

    async def _on_action(self, body: dict[str, Any], client: AsyncWebClient,
                         context: dict[str, Any]) -> None:
        """A button under an answer: feedback is stored against its turn; a follow-up
        suggestion is asked in the same thread as if the user had typed it."""
        action = body["actions"][0]
        channel = str(body.get("channel", {}).get("id", ""))
        posted = body.get("message", {})
        thread_ts = str(posted.get("thread_ts") or posted.get("ts", ""))
        user = str(body.get("user", {}).get("id", ""))
        authority = authority_of(context)
        if is_external_clicker(body, authority) and \
                authority.tenant.slack.external_users != "answer":
            return
        message = InboundMessage(
            binding=authority.binding(), tenant_id=authority.tenant.id,
            thread=f"{channel}:{thread_ts}", author=Author(user),
            text=str(action.get("value", "")),
            platform_message_id=f"action:{action.get('action_ts', '')}")
        if action["action_id"].startswith("follow_up_"):
            await self._engine.handle(message, self._sink(client, authority, channel, thread_ts,
                                                      user))
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

    async def _wants(self, event: dict[str, Any], thread: str, bot_user: str,
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


def _allowed(tenant: TenantConfig, event: dict[str, Any]) -> bool:
    """The tenant's per-channel settings: allowed channels, DMs."""
    settings = tenant.slack
    if event.get("channel_type") == "im" or str(event.get("channel", "")).startswith("D"):
        return settings.answer_dms
    return not settings.allowed_channels or event["channel"] in settings.allowed_channels
