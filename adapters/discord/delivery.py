"""Delivering a reply on Discord: typing, a placeholder edited about once a second, then
the final messages; or, for a slash command, the edit of its deferred response.

Discord accepts about five edits per five seconds per channel, so deltas are coalesced
to one edit a second. discord.py waits out 429s itself (per-route buckets); permission
and missing-channel errors are logged here and never raised into the engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

import discord

from adapters.discord.render import render
from adapters.pacing import PacedText
from core.replies import Reply
from core.turns.events import (
    NOTHING,
    FinalReply,
    Receipt,
    TextDelta,
    ToolCalled,
    ToolReturned,
    TurnEvent,
    TurnFailed,
)

log = logging.getLogger("switchboard.discord")
PREVIEW_LIMIT = 1990
"""Discord's 2,000-character message limit, less the cursor and a margin."""


class ChannelDelivery:
    def __init__(self, channel: discord.abc.Messageable, *,
                 reference: discord.Message | None = None, min_interval_s: float = 1.0,
                 clock: Callable[[], float] = time.monotonic,
                 reply_id: int | None = None, bot: str = "") -> None:
        self._channel = channel
        self.address: dict[str, object] = {
            "kind": "discord-channel", "channel_id": str(getattr(channel, "id", "")),
            "bot": bot}
        """Where this sink posts, journaled so a reply a crash interrupted is posted
        after the restart (``DiscordAdapter.redelivery``); ``bot`` names the
        tenant whose own bot posts, empty for the shared bot."""
        self._reference = reference
        self._pace = PacedText(min_interval_s, clock)
        self._tool_line = ""
        self._message: discord.Message | discord.PartialMessage | None = None
        if reply_id is not None and hasattr(channel, "get_partial_message"):
            self._message = channel.get_partial_message(reply_id)
        self._typing: asyncio.Task[None] | None = asyncio.create_task(self._type())
        self.posted: list[int] = []

    @property
    def delivered_id(self) -> str:
        return str(self._message.id) if self._message is not None else ""

    async def _type(self) -> None:
        with contextlib.suppress(discord.HTTPException):
            async with self._channel.typing():
                await asyncio.Event().wait()

    def _stop_typing(self) -> None:
        if self._typing is not None:
            self._typing.cancel()
            self._typing = None

    def close(self) -> None:
        """Stop typing even when no reply came (a duplicate delivery, a failure)."""
        self._stop_typing()

    def _reply_to(self) -> dict[str, Any]:
        if self._reference is None:
            return {}
        return {"reference": self._reference, "mention_author": False}

    async def deliver(self, event: TurnEvent) -> Receipt:
        """Every turn event, rendered in the channel: typing from the start (it began
        when the message arrived), text streamed into one message edited about once a
        second, a subtext line while a tool runs, then the final messages."""
        match event:
            case TextDelta(text=text):
                await self.delta(text)
            case ToolCalled(tool=tool, label=label):
                await self._status(f"-# 🔧 {label or tool}…")
            case ToolReturned():
                await self._status("")
            case FinalReply(reply=reply) | TurnFailed(reply=reply):
                await self.finish(reply)
            case _:
                return NOTHING
        return Receipt(self.delivered_id)

    def _content(self) -> str:
        text = self._pace.preview(PREVIEW_LIMIT - len(self._tool_line) - 1, tail=True) \
            if self._pace.text else ""
        return "\n".join(t for t in (text, self._tool_line) if t) or "…"

    async def _status(self, line: str) -> None:
        self._tool_line = line
        if self._message is None and not line:
            return
        await self._show(self._content())

    async def _show(self, content: str) -> None:
        try:
            if self._message is None:
                self._stop_typing()
                self._message = await self._channel.send(content, **self._reply_to())
                self.posted.append(self._message.id)
            else:
                await self._message.edit(content=content)
        except (discord.Forbidden, discord.NotFound) as exc:
            log.warning("cannot post to Discord channel: %s", exc)

    async def delta(self, text: str) -> None:
        if not self._pace.add(text) and self._message is not None:
            return
        await self._show(self._content())
        self._pace.shown()

    async def finish(self, reply: Reply) -> None:
        self._stop_typing()
        messages = render(reply)
        try:
            first, rest = messages[0], messages[1:]
            if self._message is not None:
                await self._message.edit(content=first.content, embed=first.embed,
                                         view=first.view)
            else:
                self._message = await self._channel.send(
                    first.content, **_extras(first.embed, first.view), **self._reply_to())
                self.posted.append(self._message.id)
            for message in rest:
                sent = await self._channel.send(message.content,
                                                **_extras(message.embed, message.view))
                self.posted.append(sent.id)
        except (discord.Forbidden, discord.NotFound) as exc:
            log.warning("cannot post to Discord channel: %s", exc)


def _extras(embed: discord.Embed | None, view: discord.ui.View | None) -> dict[str, Any]:
    extras: dict[str, Any] = {}
    if embed is not None:
        extras["embed"] = embed
    if view is not None:
        extras["view"] = view
    return extras


class InteractionDelivery:
    """A slash command's answer: the deferred response is edited, longer answers follow."""

    address: dict[str, object] = {}

    def __init__(self, interaction: discord.Interaction) -> None:
        self._interaction = interaction

    async def deliver(self, event: TurnEvent) -> Receipt:
        """The deferred response shows "thinking" from the start; a running tool edits
        it to say which; the reply (or the apology) replaces it."""
        match event:
            case ToolCalled(tool=tool, label=label):
                try:
                    await self._interaction.edit_original_response(
                        content=f"-# 🔧 {label or tool}…")
                except discord.HTTPException as exc:
                    log.warning("could not show the tool in the interaction: %s", exc)
            case FinalReply(reply=reply) | TurnFailed(reply=reply):
                await self.finish(reply)
        return NOTHING

    async def finish(self, reply: Reply) -> None:
        messages = render(reply)
        first, rest = messages[0], messages[1:]
        try:
            await self._interaction.edit_original_response(
                content=first.content, embed=first.embed, view=first.view)
            for message in rest:
                await self._interaction.followup.send(
                    message.content, ephemeral=reply.ephemeral,
                    **_extras(message.embed, message.view))
        except discord.HTTPException as exc:
            log.warning("could not complete the interaction: %s", exc)
