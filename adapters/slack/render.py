"""The engine's reply → Slack messages (mrkdwn text and Block Kit blocks).

Slack limits a section's text to 3,000 characters and a message to 50 blocks. Long
answers are split at paragraph boundaries; a split inside a code fence closes the fence
and reopens it in the next part, so no part renders half a code block. Sources become a
context block of links, the tools the model used another context line, follow-ups and
feedback become buttons.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from adapters.markdown import split_markdown
from core.replies import Reply

SECTION_LIMIT = 3000
BLOCK_LIMIT = 50
_FENCE = "```"
_LINK = re.compile(r"\[([^\]]+)\]\((https?://[^)\s]+)\)")
_BOLD = re.compile(r"\*\*(.+?)\*\*|__(.+?)__")
_ITALIC = re.compile(r"(?<![*\w])\*(?!\s)(.+?)(?<!\s)\*(?![*\w])")
_HEADING = re.compile(r"^#{1,6}\s+(.*)$", re.MULTILINE)
_CODE_SPAN = re.compile(r"`[^`\n]+`")

Block = dict[str, Any]


@dataclass(slots=True)
class SlackMessage:
    text: str
    blocks: list[Block] = field(default_factory=list)


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _inline(text: str) -> str:
    """Markdown → mrkdwn for text outside code: escapes, links, bold, italic, headings."""
    spans: list[str] = []

    def keep(match: re.Match[str]) -> str:
        spans.append(match.group(0))
        return f"\x00{len(spans) - 1}\x00"

    text = _CODE_SPAN.sub(keep, text)
    quoted = [line.startswith("> ") for line in text.split("\n")]
    text = "\n".join(("> " + _escape(line[2:])) if q else _escape(line)
                     for line, q in zip(text.split("\n"), quoted, strict=True))
    text = _LINK.sub(lambda m: f"<{m.group(2)}|{m.group(1)}>", text)
    text = _BOLD.sub(lambda m: f"\x01{m.group(1) or m.group(2)}\x01", text)
    text = _ITALIC.sub(lambda m: f"_{m.group(1)}_", text)
    text = _HEADING.sub(lambda m: f"\x01{m.group(1)}\x01", text).replace("\x01", "*")
    return re.sub("\x00(\\d+)\x00", lambda m: spans[int(m.group(1))], text)


def to_mrkdwn(markdown: str) -> str:
    parts = markdown.split(_FENCE)
    return _FENCE.join(part if i % 2 else _inline(part) for i, part in enumerate(parts))


def split_text(text: str, limit: int = SECTION_LIMIT) -> list[str]:
    return split_markdown(text, limit)


def _sources_block(reply: Reply) -> Block | None:
    if not reply.citations:
        return None
    elements = []
    for c in reply.citations[:10]:
        target = f"<{c.url}|{_escape(c.title)}>" if c.url else f"{_escape(c.title)} (`{c.source}`)"
        elements.append({"type": "mrkdwn", "text": f"[{c.number}] {target}"})
    return {"type": "context", "elements": elements}


def _tools_block(reply: Reply) -> Block | None:
    """The tools the model used, as one context line under the answer."""
    if not reply.tools:
        return None
    used = " · ".join(f"`{t.tool}`" + (f" ({_escape(t.summary)})" if t.summary else "")
                      for t in reply.tools[:10])
    return {"type": "context", "elements": [{"type": "mrkdwn",
                                             "text": f":hammer_and_wrench: {used}"[:3000]}]}


def _buttons(reply: Reply) -> Block | None:
    buttons: list[Block] = [
        {"type": "button", "action_id": f"follow_up_{i}",
         "text": {"type": "plain_text", "text": q[:75]}, "value": q[:2000]}
        for i, q in enumerate(reply.follow_ups[:3])]
    buttons += [{"type": "button", "action_id": a.id, "value": a.value,
                 "text": {"type": "plain_text", "text": a.label}}
                for a in reply.actions[:5]]
    return {"type": "actions", "block_id": f"reply_{reply.turn_id}"[:255],
            "elements": buttons} if buttons else None


def render(reply: Reply) -> list[SlackMessage]:
    """One or more Slack messages; sources and buttons go on the last one."""
    sections = [{"type": "section", "text": {"type": "mrkdwn", "text": piece}}
                for piece in split_text(to_mrkdwn(reply.text))] or \
        [{"type": "section", "text": {"type": "mrkdwn", "text": " "}}]
    tail = [b for b in (_sources_block(reply), _tools_block(reply), _buttons(reply))
            if b is not None]
    per_message = BLOCK_LIMIT - len(tail)
    messages = [SlackMessage(text="", blocks=sections[i:i + per_message])
                for i in range(0, len(sections), per_message)]
    messages[-1].blocks += tail
    for message in messages:
        message.text = "\n\n".join(b["text"]["text"] for b in message.blocks
                                   if b["type"] == "section")[:3900]
    return messages
