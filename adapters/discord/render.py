"""The engine's reply → Discord messages: content, a sources embed, buttons.

Discord caps content at 2,000 characters, so long answers continue in further messages,
cut without breaking code fences. Sources become an embed of links on the last message
and the tools the model used a subtext line; feedback, follow-ups and the Confirm /
Cancel pair of a proposed tool call become buttons
whose ``custom_id`` carries everything a click needs, so they keep working after a
restart without any in-memory view.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import discord

from adapters.markdown import split_markdown
from core.replies import CONFIRM_NO, CONFIRM_YES, Reply

CONTENT_LIMIT = 2000
EMBED_DESCRIPTION_LIMIT = 4096
FEEDBACK_PREFIX = "sb:fb:"
FOLLOW_UP_PREFIX = "sb:fu:"
CONFIRM_PREFIX = "sb:cf:"


_CODE = re.compile(r"(```.*?```|`[^`\n]*`)", re.DOTALL)
_MASKED = re.compile(r"\]\((https?://[^)\s<>]+)\)")
_BARE = re.compile(r"(?<![<\w])(https?://[^\s<>()\]]*[^\s<>()\].,;:!?'\"])")


def no_previews(text: str) -> str:
    """Links as Discord shows them without fetching a preview (``<url>``): a preview is
    a request to the link's host, which is how data would leave through a URL. Code is
    left as written."""
    parts = _CODE.split(text)
    for i in range(0, len(parts), 2):
        parts[i] = _BARE.sub(r"<\1>", _MASKED.sub(r"](<\1>)", parts[i]))
    return "".join(parts)


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
    for action in reply.actions:
        if action.id in (CONFIRM_YES, CONFIRM_NO):
            yes = action.id == CONFIRM_YES
            view.add_item(discord.ui.Button(
                label=action.label, style=discord.ButtonStyle.danger if yes
                else discord.ButtonStyle.secondary,
                custom_id=f"{CONFIRM_PREFIX}{'yes' if yes else 'no'}:{action.value}"[:100]))
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
    pieces = split_markdown(no_previews(reply.text), CONTENT_LIMIT) or ["…"]
    line = tools_line(reply)
    if line and len(pieces[-1]) + len(line) + 1 <= CONTENT_LIMIT:
        pieces[-1] = f"{pieces[-1]}\n{line}"
    elif line:
        pieces.append(line)
    messages = [DiscordMessage(piece) for piece in pieces]
    messages[-1].embed = sources_embed(reply)
    messages[-1].view = buttons(reply)
    return messages
