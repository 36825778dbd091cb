"""Slack event payloads → the engine's normalized message.

The thread is the session: a top-level mention starts a thread under itself, a reply
continues it. The platform message id is the message's own ``channel:ts``, not the
event id: Slack sends one user message as both ``app_mention`` and ``message`` events
(two event ids), and redelivers an event with the same ts — both must dedupe to one.
"""

from __future__ import annotations

import logging
import re
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.payloads import SlackMessageEvent
from core.messages import Attachment, Author, Binding, InboundMessage

log = logging.getLogger("switchboard.slack")

_MENTION = re.compile(r"<@([UW][A-Z0-9]+)>")
_IGNORED_SUBTYPES = frozenset({"bot_message", "message_changed", "message_deleted",
                               "channel_join", "channel_leave", "channel_topic",
                               "channel_purpose", "channel_name", "pinned_item",
                               "thread_broadcast"})


def thread_of(event: SlackMessageEvent) -> str:
    return f"{event['channel']}:{event.get('thread_ts') or event['ts']}"


def clean_text(text: str, bot_user_id: str) -> str:
    """The question without the bot's own mention; other mentions stay readable."""
    without_bot = text.replace(f"<@{bot_user_id}>", " ") if bot_user_id else text
    return " ".join(without_bot.split())


def mentions(text: str, user_id: str) -> bool:
    return user_id in _MENTION.findall(text)


def edited(body: dict[str, Any], bot_user_id: str, binding: Binding,
           tenant_id: str) -> InboundMessage | None:
    """The new text of an edited user message (``message_changed``), or None."""
    event = body.get("event", {})
    if event.get("type") != "message" or event.get("subtype") != "message_changed":
        return None
    inner = dict(event.get("message") or {})
    if not inner.get("user") or inner.get("bot_id") or inner.get("user") == bot_user_id:
        return None
    inner.update(type="message", channel=event["channel"])
    inner.pop("subtype", None)
    message = to_inbound({"event": inner}, bot_user_id, binding, tenant_id)
    if message is None:
        return None
    return replace(message, revision=str(event.get("event_ts") or event.get("ts", "")))


def deleted(body: dict[str, Any], binding: Binding, tenant_id: str) -> InboundMessage | None:
    """The user message a ``message_deleted`` event removed, as far as Slack tells."""
    event = body.get("event", {})
    if event.get("type") != "message" or event.get("subtype") != "message_deleted":
        return None
    previous = event.get("previous_message") or {}
    ts = str(event.get("deleted_ts") or previous.get("ts", ""))
    if not ts or previous.get("bot_id"):
        return None
    channel = str(event["channel"])
    return InboundMessage(
        binding=binding, tenant_id=tenant_id,
        thread=f"{channel}:{previous.get('thread_ts') or ts}",
        author=Author(str(previous.get("user", ""))), text="",
        platform_message_id=f"{channel}:{ts}")


def to_inbound(body: dict[str, Any], bot_user_id: str, binding: Binding,
               tenant_id: str) -> InboundMessage | None:
    """The normalized message, or None for events that are not user messages.

    ``binding`` and ``tenant_id`` are what bolt's authorization decided for the request;
    the body's own team fields are never read.
    """
    event: SlackMessageEvent = body.get("event", {})
    if event.get("type") not in ("app_mention", "message"):
        return None
    if event.get("bot_id") or event.get("subtype") in _IGNORED_SUBTYPES:
        return None
    user = event.get("user", "")
    if not isinstance(user, str) or not user or user == bot_user_id:
        return None
    if not isinstance(event.get("channel"), str) or not isinstance(event.get("ts"), str):
        return None
    files = tuple(Attachment(name=f.get("name", ""), url=f.get("url_private", ""),
                             content_type=f.get("mimetype", ""), size=f.get("size", 0))
                  for f in event.get("files", []))
    return InboundMessage(
        binding=binding, tenant_id=tenant_id, thread=thread_of(event),
        author=Author(user), text=clean_text(event.get("text", ""), bot_user_id),
        platform_message_id=f"{event['channel']}:{event['ts']}", attachments=files,
        received_at=_when(event["ts"]))


def _when(ts: str) -> datetime:
    """A Slack ts is the message's time; a malformed one is not worth losing it over."""
    try:
        return datetime.fromtimestamp(float(ts), UTC)
    except ValueError:
        return datetime.now(UTC)


async def workspace_roles(client: AsyncWebClient, user: str) -> frozenset[str]:
    """Workspace admins and owners count as platform admins (``users.info``); when Slack
    cannot say, the person is an ordinary member."""
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
