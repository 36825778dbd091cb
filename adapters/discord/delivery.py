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

log = logging.getLogger("switchboard.discord")
PREVIEW_LIMIT = 1990
"""Discord's 2,000-character message limit, less the cursor and a margin."""


class ChannelSink:
    def __init__(self, channel: discord.abc.Messageable, *,
                 reference: discord.Message | None = None, min_interval_s: float = 1.0,
                 clock: Callable[[], float] = time.monotonic,
                 reply_id: int | None = None, bot: str = "") -> None:
        self._channel = channel
        self.address: dict[str, object] = {
            "kind": "discord-channel", "channel_id": str(getattr(channel, "id", "")),
            "bot": bot}
        """Where this sink posts, journaled so a reply a crash interrupted is posted
        after the restart (``DiscordAdapter.redelivery_sink``); ``bot`` names the
        tenant whose own bot posts, empty for the shared bot."""
        self._reference = reference
        self._pace = PacedText(min_interval_s, clock)
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

    async def working(self) -> None:
        return None  # typing starts as soon as the message arrives

    async def delta(self, text: str) -> None:
        if not self._pace.add(text) and self._message is not None:
            return
        try:
            if self._message is None:
                self._stop_typing()
                self._message = await self._channel.send(self._pace.preview(PREVIEW_LIMIT),
                                                         **self._reply_to())
                self.posted.append(self._message.id)
            else:
                await self._message.edit(content=self._pace.preview(PREVIEW_LIMIT, tail=True))
            self._pace.shown()
        except (discord.Forbidden, discord.NotFound) as exc:
            log.warning("cannot post to Discord channel: %s", exc)

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


class InteractionSink:
    """A slash command's answer: the deferred response is edited, longer answers follow."""

    def __init__(self, interaction: discord.Interaction) -> None:
        self._interaction = interaction

    async def working(self) -> None:
        return None  # the deferred response already shows "thinking"

    async def delta(self, text: str) -> None:
        return None

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
