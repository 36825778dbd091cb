"""Slack's interactive surfaces: the slash command, the message shortcut and the buttons
under an answer. Each becomes an ``InboundMessage`` for the tenant ``authorize`` decided
(``authority.py``); a structured intent travels as a ``CommandCall``, never as text."""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.authority import SlackAuthority, is_external_clicker
from adapters.slack.delivery import thread_delivery
from adapters.slack.files import FILE_ID, shared_file
from adapters.slack.inbound import clean_text, workspace_roles
from adapters.slack.payloads import BlockActions, MessageShortcut, SlashCommand
from adapters.slack.render import render
from core.engine import Engine, Rating
from core.messages import Attachment, Author, CommandCall, InboundMessage
from core.replies import CONFIRM_NO, CONFIRM_YES, Reply
from core.turns.events import NOTHING, FinalReply, Receipt, TurnEvent, TurnFailed

log = logging.getLogger("switchboard.slack")


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


class SlackInteractions:
    def __init__(self, engine: Engine, api_url: str) -> None:
        self._engine = engine
        self._api_url = api_url

    async def on_command(self, body: SlashCommand, client: AsyncWebClient, respond: Any,
                         authority: SlackAuthority, bot_token: str) -> None:
        """``/switchboard <command> args`` runs the registry command; the answer follows
        through ``response_url``, privately or in the channel as the command declares."""
        tenant = authority.tenant
        if body.get("command") != tenant.commands.slack_command:
            return
        user = str(body.get("user_id", ""))
        roles = await workspace_roles(client, user)
        text = str(body.get("text", "")).strip() or "help"
        files: tuple[Attachment, ...] = ()
        call: CommandCall | None = None  # typed text stays text: the registry parses it
        name, _, rest = text.lstrip("/").partition(" ")
        file_id = FILE_ID.search(rest.strip()) if name == "ingest" else None
        if file_id is not None:
            found = await shared_file(client, file_id.group(1), bot_token, tenant,
                                      self._api_url)
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

    async def on_shortcut(self, body: MessageShortcut, client: AsyncWebClient,
                          authority: SlackAuthority, bot_user: str) -> None:
        """The "Ask Switchboard" message shortcut: the chosen message is asked in its
        thread on behalf of the person who picked the shortcut."""
        chosen = body.get("message") or {}
        channel = str((body.get("channel") or {}).get("id", ""))
        thread_ts = str(chosen.get("thread_ts") or chosen.get("ts", ""))
        user = str((body.get("user") or {}).get("id", ""))
        text = clean_text(str(chosen.get("text", "")), bot_user)
        if not (channel and thread_ts and text):
            return
        if is_external_clicker(body, authority) and \
                authority.tenant.slack.external_users != "answer":
            return
        message = InboundMessage(
            binding=authority.binding(), tenant_id=authority.tenant.id,
            thread=f"{channel}:{thread_ts}", author=Author(user), text=text,
            platform_message_id=f"shortcut:{body.get('trigger_id', '')}")
        await self._engine.handle(message, thread_delivery(client, authority, channel,
                                                           thread_ts, user))

    async def on_action(self, body: BlockActions, client: AsyncWebClient,
                        authority: SlackAuthority) -> None:
        """A button under an answer: feedback is stored against its turn; a follow-up
        suggestion is asked in the same thread as if the user had typed it; Confirm or
        Cancel answers a tool call the model proposed, as data (``CommandCall``)."""
        actions = body.get("actions") or []
        if not actions:
            return
        action = actions[0]
        channel = str((body.get("channel") or {}).get("id", ""))
        posted = body.get("message") or {}
        thread_ts = str(posted.get("thread_ts") or posted.get("ts", ""))
        user = str((body.get("user") or {}).get("id", ""))
        if is_external_clicker(body, authority) and \
                authority.tenant.slack.external_users != "answer":
            return
        message = InboundMessage(
            binding=authority.binding(), tenant_id=authority.tenant.id,
            thread=f"{channel}:{thread_ts}", author=Author(user),
            text=str(action.get("value", "")),
            platform_message_id=f"action:{action.get('action_ts', '')}")
        action_id = str(action.get("action_id", ""))
        if action_id in (CONFIRM_YES, CONFIRM_NO):
            yes = action_id == CONFIRM_YES
            message = replace(message, text="Confirm" if yes else "Cancel",
                              author=Author(user, roles=await workspace_roles(client, user)),
                              command=CommandCall.confirmation(message.text, yes))
            await self._engine.handle(message, thread_delivery(client, authority, channel,
                                                               thread_ts, user))
            return
        if action_id.startswith("follow_up_"):
            await self._engine.handle(message, thread_delivery(client, authority, channel,
                                                               thread_ts, user))
            return
        rating: Rating = "up" if action_id == "feedback_up" else "down"
        stored = await self._engine.record_feedback(message, message.text, rating)
        try:
            await client.chat_postEphemeral(
                channel=channel, user=user, thread_ts=thread_ts,
                text="Thanks for the feedback!" if stored else
                "Sorry — I couldn't find that answer to record your feedback.")
        except SlackApiError as exc:
            log.warning("could not confirm feedback: %s", exc.response.get("error", ""))
