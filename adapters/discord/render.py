"""The engine's reply → Discord messages: content, a sources embed, buttons.

Discord caps content at 2,000 characters, so long answers continue in further messages,
cut without breaking code fences. Sources become an embed of links on the last message
and the tools the model used a subtext line; feedback and follow-ups become buttons
whose ``custom_id`` carries everything a click needs, so they keep working after a
restart without any in-memory view.
"""

from __future__ import annotations

from dataclasses import dataclass

import discord

from adapters.markdown import split_markdown
from core.replies import Reply

CONTENT_LIMIT = 2000
EMBED_DESCRIPTION_LIMIT = 4096
FEEDBACK_PREFIX = "sb:fb:"
FOLLOW_UP_PREFIX = "sb:fu:"


@dataclass(slots=True)
class DiscordMessage:
    content: str
    embed: discord.Embed | None = None
    view: discord.ui.View | None = None


def sources_embed(reply: Reply) -> discord.Embed | None:
    if not reply.citations:
        return None
    lines = []
    for c in reply.citations:
        label = c.title.replace("[", "(").replace("]", ")") or c.source
        lines.append(f"[{c.number}] [{label}]({c.url})" if c.url.startswith(("http://",
                                                                             "https://"))
                     else f"[{c.number}] {label}")
    return discord.Embed(title="Sources",
                         description="\n".join(lines)[:EMBED_DESCRIPTION_LIMIT])


def buttons(reply: Reply) -> discord.ui.View | None:
    if not reply.turn_id or reply.kind != "answer":
        return None
    view = discord.ui.View(timeout=None)
    for index, question in enumerate(reply.follow_ups[:3]):
        view.add_item(discord.ui.Button(label=question[:80], style=discord.ButtonStyle.secondary,
                                        custom_id=f"{FOLLOW_UP_PREFIX}{index}:{reply.turn_id}"))
    view.add_item(discord.ui.Button(label="Helpful", emoji="👍",
                                    style=discord.ButtonStyle.success,
                                    custom_id=f"{FEEDBACK_PREFIX}up:{reply.turn_id}"))
    view.add_item(discord.ui.Button(label="Not helpful", emoji="👎",
                                    style=discord.ButtonStyle.secondary,
                                    custom_id=f"{FEEDBACK_PREFIX}down:{reply.turn_id}"))
    return view


def tools_line(reply: Reply) -> str:
    """The tools the model used, as Discord's small grey subtext line."""
    if not reply.tools:
        return ""
    used = " · ".join(f"`{t.tool}`" + (f" ({t.summary})" if t.summary else "")
                      for t in reply.tools[:10])
    return f"-# 🔧 {used}"[:300]


def render(reply: Reply) -> list[DiscordMessage]:
    pieces = split_markdown(reply.text, CONTENT_LIMIT) or ["…"]
    line = tools_line(reply)
    if line and len(pieces[-1]) + len(line) + 1 <= CONTENT_LIMIT:
        pieces[-1] = f"{pieces[-1]}\n{line}"
    elif line:
        pieces.append(line)
    messages = [DiscordMessage(piece) for piece in pieces]
    messages[-1].embed = sources_embed(reply)
    messages[-1].view = buttons(reply)
    return messages
