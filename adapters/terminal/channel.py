"""The terminal channel: a conversation with the engine on stdin/stdout.

An ordinary adapter: it builds inbound messages (channel ``terminal``, the tenant id as
binding, the thread name as conversation key) and renders replies — deltas as they
stream, then citations and follow-ups: as Markdown (``rich``) for a person at a
terminal, as plain text when the output is a pipe or a file. The person at the terminal
is the operator. A change the model proposed (a tool call waiting for confirmation) is
asked about at the prompt in an interactive session; the answer goes back as data.
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections.abc import Awaitable, Callable
from typing import Protocol, TextIO

from rich.console import Console
from rich.live import Live
from rich.markdown import Markdown
from rich.text import Text

from core.engine import Engine
from core.messages import Author, Binding, CommandCall, InboundMessage
from core.replies import CONFIRM_YES, Reply
from core.turns.chain import Delivery
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

OPERATOR = "operator"
"""The default terminal user: whoever runs the process, and so an admin of every tenant.
Any other ``--user`` is an ordinary user unless listed in the tenant's ``admins.terminal``."""


def confirm_id(reply: Reply) -> str:
    """The id of the tool call this reply asks the user to confirm, or ""."""
    return next((a.value for a in reply.actions if a.id == CONFIRM_YES), "")


class TerminalDelivery:
    """Text as it streams, a line per tool call, then sources and follow-ups."""

    address: dict[str, object] = {}

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._streamed = ""
        self.confirm = ""

    async def deliver(self, event: TurnEvent) -> Receipt:
        match event:
            case TextDelta(text=text):
                self._streamed += text
                self._write(text)
            case ToolCalled(tool=tool, label=label):
                self._write(f"\n  ⚙ {label or tool}… ")
                self._streamed = ""
            case ToolReturned(outcome=outcome, summary=summary):
                self._write(f"{outcome}{f': {summary}' if summary else ''}\n")
            case FinalReply(reply=reply) | TurnFailed(reply=reply):
                self.confirm = confirm_id(reply)
                self._finish(reply)
        return NOTHING

    def _write(self, text: str) -> None:
        self._out.write(text)
        self._out.flush()

    def _finish(self, reply: Reply) -> None:
        if reply.text.startswith(self._streamed):
            self._out.write(reply.text[len(self._streamed):])
        else:
            self._out.write("\n" + reply.text)
        self._out.write("\n")
        for c in reply.citations:
            self._out.write(f"  [{c.number}] {c.title} — {c.url or c.source}\n")
        for follow_up in reply.follow_ups:
            self._out.write(f"  ↪ {follow_up}\n")
        self._out.flush()


class RichDelivery:
    """For a person at a terminal: the answer rendered as Markdown while it streams
    (``rich``), tool calls as dim lines, then sources as links and follow-ups."""

    address: dict[str, object] = {}

    def __init__(self, console: Console) -> None:
        self._console = console
        self._streamed = ""
        self._live: Live | None = None
        self.confirm = ""

    async def deliver(self, event: TurnEvent) -> Receipt:
        match event:
            case TextDelta(text=text):
                self._streamed += text
                if self._live is None:
                    self._live = Live(console=self._console, transient=True,
                                      refresh_per_second=12)
                    self._live.start()
                self._live.update(Markdown(self._streamed))
            case ToolCalled(tool=tool, label=label):
                self._stop()
                self._console.print(f"  ⚙ {label or tool}…", style="dim")
            case ToolReturned(outcome=outcome, summary=summary):
                self._console.print(f"    {outcome}{f': {summary}' if summary else ''}",
                                    style="dim", markup=False)
            case FinalReply(reply=reply) | TurnFailed(reply=reply):
                self._stop()
                self.confirm = confirm_id(reply)
                self._console.print(Markdown(reply.text))
                for c in reply.citations:
                    target = c.url or c.source
                    self._console.print(Text.assemble(
                        f"  [{c.number}] ", (c.title, f"link {c.url}" if c.url else ""),
                        f" — {target}"), style="dim")
                for follow_up in reply.follow_ups:
                    self._console.print(f"  ↪ {follow_up}", style="cyan", markup=False)
        return NOTHING

    def _stop(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None
        self._streamed = ""


def terminal_message(tenant: str, thread: str, user: str, text: str, message_id: str,
                     command: CommandCall | None = None) -> InboundMessage:
    """A line typed at the terminal (or an answer at its prompt, ``command``) as the
    engine's inbound message. The operator (the default user) has the operator role;
    any other ``--user`` is an ordinary user."""
    roles = frozenset({"operator"}) if user == OPERATOR else frozenset()
    return InboundMessage(
        binding=Binding("terminal", tenant), tenant_id=tenant, thread=thread,
        author=Author(user, display_name=user, roles=roles), text=text,
        platform_message_id=message_id, command=command)


class TurnRunner(Protocol):
    """Runs a terminal turn: the engine in this process, or a running ``serve``'s local
    interface (``remote.py``)."""

    async def handle(self, tenant: str, thread: str, user: str, text: str, message_id: str,
                     delivery: Delivery, command: CommandCall | None = None) -> str: ...


class LocalRunner:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    async def handle(self, tenant: str, thread: str, user: str, text: str, message_id: str,
                     delivery: Delivery, command: CommandCall | None = None) -> str:
        message = terminal_message(tenant, thread, user, text, message_id, command)
        return (await self._engine.handle(message, delivery)).outcome


class TerminalChannel:
    def __init__(self, engine: Engine | TurnRunner, tenant: str, *, user: str = OPERATOR,
                 thread: str = "terminal", out: TextIO = sys.stdout) -> None:
        self._runner = LocalRunner(engine) if isinstance(engine, Engine) else engine
        self._tenant = tenant
        self._user = user
        self._thread = thread
        self._out = out
        self._console = Console(file=out) if out.isatty() else None
        self.ask: Callable[[str], Awaitable[str]] | None = None
        """Asks the person a question (interactive sessions); None: nothing is asked
        and a proposed change stays unconfirmed."""

    async def send(self, text: str, command: CommandCall | None = None) -> str:
        delivery: TerminalDelivery | RichDelivery = (
            RichDelivery(self._console) if self._console is not None
            else TerminalDelivery(self._out))
        outcome = await self._runner.handle(self._tenant, self._thread, self._user, text,
                                            uuid.uuid4().hex, delivery, command)
        if outcome == "unknown_tenant":
            self._out.write(f"No tenant {self._tenant!r} is loaded. "
                            "Run `switchboard tenants check`.\n")
        if delivery.confirm and self.ask is not None:
            try:
                answer = await self.ask("Confirm this change? [y/N] ")
            except EOFError:
                answer = ""
            yes = answer.strip().lower() in ("y", "yes")
            self._out.write("bot> ")
            return await self.send("Confirm" if yes else "Cancel",
                                   CommandCall.confirmation(delivery.confirm, yes))
        return outcome

    async def interactive(self) -> None:
        self._out.write(f"Chatting with tenant {self._tenant!r} in thread {self._thread!r}. "
                        "Type /help for commands, Ctrl-D to leave.\n")
        if self.ask is None:
            self.ask = lambda question: asyncio.to_thread(input, question)
        while True:
            try:
                line = await asyncio.to_thread(input, "you> ")
            except EOFError:
                self._out.write("\n")
                return
            if line.strip():
                self._out.write("bot> ")
                await self.send(line)
