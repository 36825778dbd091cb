"""Markdown helpers every channel needs: cutting a long answer into messages.

Channels cap a message (Discord 2,000 characters, a Slack section 3,000). An answer is
cut at paragraphs, then lines, then spaces; a cut inside a code fence closes the fence
and reopens it (with its language) in the next piece, so no piece renders half a code
block.
"""

from __future__ import annotations

FENCE = "```"


def _open_fence(piece: str) -> str | None:
    """The opening line of the fence left open at the end of ``piece``, if any."""
    opened: str | None = None
    for line in piece.split("\n"):
        if line.lstrip().startswith(FENCE):
            opened = None if opened is not None else line.strip()
    return opened


def split_markdown(text: str, limit: int) -> list[str]:
    pieces: list[str] = []
    rest = text
    while len(rest) > limit:
        window = rest[:limit - len(FENCE) - 1]
        cut = max(window.rfind("\n\n"), window.rfind("\n"))
        if cut < limit // 3:
            cut = window.rfind(" ")
        if cut <= 0:
            cut = len(window)
        piece, rest = rest[:cut], rest[cut:].lstrip("\n ")
        opener = _open_fence(piece)
        if opener is not None:
            piece += "\n" + FENCE
            rest = opener + "\n" + rest
        pieces.append(piece)
    pieces.append(rest)
    return [p for p in pieces if p.strip()]
