"""The shapes of what Slack sends to the listeners, as TypedDicts.

Only the fields Switchboard reads are declared, all optional (``total=False``): Slack
adds fields freely and omits some by surface, so the listeners read with ``.get`` and a
type checker keeps them to these names. The HTTP edge has validated the envelope
already (``envelope.py``); these describe the bodies bolt then hands to listeners.
See https://api.slack.com/interactivity/slash-commands,
https://api.slack.com/reference/interaction-payloads/block-actions and
https://api.slack.com/reference/interaction-payloads/shortcuts.
"""

from __future__ import annotations

from typing import NotRequired, TypedDict


class SlashCommand(TypedDict, total=False):
    """``application/x-www-form-urlencoded`` fields of a slash command."""

    command: str
    text: str
    user_id: str
    channel_id: str
    team_id: str
    trigger_id: str
    response_url: str


class Reference(TypedDict, total=False):
    """A user, channel or team as interactivity payloads name them."""

    id: str
    team_id: str


class PostedMessage(TypedDict, total=False):
    ts: str
    thread_ts: str
    text: str
    user: str


class ActionItem(TypedDict, total=False):
    action_id: str
    block_id: str
    value: str
    action_ts: str


class BlockActions(TypedDict, total=False):
    """A click on a button under an answer (``type: block_actions``)."""

    type: str
    actions: list[ActionItem]
    user: Reference
    channel: Reference
    message: PostedMessage
    trigger_id: str


class MessageShortcut(TypedDict, total=False):
    """A message shortcut ("Ask Switchboard") picked on a message."""

    type: str
    callback_id: str
    trigger_id: str
    user: Reference
    channel: Reference
    message: PostedMessage


class SlackFile(TypedDict, total=False):
    id: str
    name: str
    mimetype: str
    size: int
    url_private: str


class SlackMessageEvent(TypedDict):
    type: str
    channel: str
    ts: str
    user: NotRequired[str]
    text: NotRequired[str]
    thread_ts: NotRequired[str]
    channel_type: NotRequired[str]
    subtype: NotRequired[str]
    bot_id: NotRequired[str]
    team: NotRequired[str]
    files: NotRequired[list[SlackFile]]


class EventCallback(TypedDict, total=False):
    type: str
    team_id: str
    event_id: str
    event: SlackMessageEvent
    is_ext_shared_channel: bool
