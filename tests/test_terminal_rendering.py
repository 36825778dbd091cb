"""The terminal renders answers as Markdown for a person at a terminal (rich), and as
plain text into a pipe."""

from __future__ import annotations

import io

from rich.console import Console

from adapters.terminal.channel import RichDelivery, TerminalDelivery
from core.replies import Citation, Reply
from core.turns.events import FinalReply, TextDelta, ToolCalled, ToolReturned

ANSWER = "Limits use a **token bucket** per user [1]. Set `user_per_minute` to change it."
REPLY = Reply(ANSWER, citations=(Citation(number=1, title="Configuration > Limits",
                                          source="docs/configuration.md",
                                          url="https://example.com/docs/configuration"),),
              follow_ups=("Tell me more about Tenant files",))


async def test_a_terminal_gets_rendered_markdown_sources_and_follow_ups() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=100, color_system=None)
    delivery = RichDelivery(console)
    await delivery.deliver(TextDelta("t", ANSWER[:30]))
    await delivery.deliver(ToolCalled("t", "c1", "calculator", label="Calculating"))
    await delivery.deliver(ToolReturned("t", "c1", "calculator", "ok", "= 4"))
    await delivery.deliver(TextDelta("t", ANSWER))
    await delivery.deliver(FinalReply("t", REPLY))
    shown = out.getvalue()
    assert "token bucket" in shown and "**" not in shown and "`user_per_minute`" not in shown
    assert "⚙ Calculating…" in shown and "ok: = 4" in shown
    assert "[1] Configuration > Limits — https://example.com/docs/configuration" in shown
    assert "↪ Tell me more about Tenant files" in shown


async def test_a_pipe_gets_the_plain_text() -> None:
    out = io.StringIO()
    delivery = TerminalDelivery(out)
    await delivery.deliver(TextDelta("t", ANSWER))
    await delivery.deliver(FinalReply("t", REPLY))
    assert out.getvalue().startswith(ANSWER)
    assert "  [1] Configuration > Limits — https://example.com/docs/configuration" in \
        out.getvalue()
