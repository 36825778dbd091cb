"""The command registry: a command is declared once and every channel can run it.

A declaration names the command, describes it, gives a pydantic model for its arguments
(whose JSON Schema adapters use to build native slash commands and the model gets as a
tool's parameters), says who may run it and where it is offered (as a slash command, as
a tool for the model, or both). Parsing turns ``/name args`` into raw arguments; the
executor (``executor.py``) validates and runs them.
"""

from __future__ import annotations

import shlex
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from core.commands.context import CommandContext, Via
from core.knowledge.base import Passage
from core.plain_errors import plain
from core.tenants.models import TenantConfig

Permission = Literal["anyone", "admin"]
Surface = Literal["both", "command", "tool"]


class NoArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True, slots=True)
class CommandResult:
    text: str
    ephemeral: bool = False
    passages: tuple[Passage, ...] = ()
    """Knowledge a tool found: numbered into the answer's sources, so citations of
    them flow into the reply."""
    summary: str = ""
    """One short line for the user when run as a tool ("3 passages", "= 42")."""


Handler = Callable[[CommandContext, Any], Awaitable[CommandResult]]


@dataclass(frozen=True, slots=True)
class Command:
    name: str
    description: str
    handler: Handler
    args: type[BaseModel] = NoArgs
    permission: Permission = "anyone"
    ephemeral: bool = False
    surface: Surface = "both"
    label: str = ""
    """What the user sees while the model runs it ("Searching the knowledge base")."""
    writes: bool = False
    """It changes something (documents, conversations, settings): called by the model,
    it runs only once the user confirms (``core/engine/confirmations.py``)."""
    verbs: tuple[str, ...] = ()
    """Words that, with every argument value, mark a user's message as asking for this
    very call, so it needs no extra confirmation."""

    def usage(self) -> str:
        parts = []
        for fname, f in self.args.model_fields.items():
            parts.append(f"<{fname}>" if f.is_required() else f"[{fname}]")
        return " ".join([f"/{self.name}", *parts])

    def help_line(self) -> str:
        admin = " _(admin)_" if self.permission == "admin" else ""
        return f"`{self.usage()}` — {self.description}{admin}"


class CommandError(ValueError):
    """The input named no known command or had bad arguments; ``str()`` is for the user."""


def _bind(command: Command, tokens: list[str]) -> dict[str, Any]:
    names = list(command.args.model_fields)
    values: dict[str, Any] = {}
    positional: list[str] = []
    for token in tokens:
        key, sep, value = token.partition("=")
        if sep and key in names:
            values[key] = value
        else:
            positional.append(token)
    free = [n for n in names if n not in values]
    if len(positional) > len(free):
        if not free:
            raise CommandError(f"/{command.name} takes no such argument: "
                               f"{' '.join(positional)}. Usage: `{command.usage()}`")
        head, tail = positional[:len(free) - 1], positional[len(free) - 1:]
        positional = [*head, " ".join(tail)]
    values.update(zip(free, positional, strict=False))
    return values


@dataclass(slots=True)
class CommandRegistry:
    commands: dict[str, Command] = field(default_factory=dict)

    def register(self, command: Command) -> None:
        if command.name in self.commands:
            raise ValueError(f"command /{command.name} is declared twice")
        self.commands[command.name] = command

    def get(self, name: str) -> Command | None:
        return self.commands.get(name.lower())

    def enabled(self, command: Command, tenant: TenantConfig, via: Via) -> bool:
        """Whether the tenant offers ``command`` the way it arrived: typed or sent as
        platform data (a slash command), or called by the model (a tool on the tenant's
        allow-list)."""
        if not tenant.command_enabled(command.name):
            return False
        if via == "tool":
            return command.surface != "command" and tenant.tools.allows(command.name)
        return command.surface != "tool"

    def available(self, tenant: TenantConfig, is_admin: bool) -> list[Command]:
        """The slash commands a user may run."""
        return [c for c in sorted(self.commands.values(), key=lambda c: c.name)
                if self.enabled(c, tenant, "text") and (is_admin or c.permission == "anyone")]

    def tools_for(self, tenant: TenantConfig, is_admin: bool) -> list[Command]:
        """The tools the model is offered for this user: from the user's role and the
        tenant's allow-list only, never from anything said in the conversation."""
        return [c for c in sorted(self.commands.values(), key=lambda c: c.name)
                if self.enabled(c, tenant, "tool") and (is_admin or c.permission == "anyone")]

    def parse_args(self, text: str, tenant: TenantConfig) -> tuple[str, dict[str, Any]]:
        """A command typed as text, ``/name positional key=value …``: its name and raw
        arguments. Raises ``CommandError`` for an unknown name or unreadable quoting."""
        body = text.strip()[1:]
        name, _, raw_args = body.partition(" ")
        command = self.get(name)
        if command is None or not self.enabled(command, tenant, "text"):
            raise CommandError(f"Unknown command `/{name}`. Type `/help` to see the commands.")
        try:
            tokens = shlex.split(raw_args)
        except ValueError as exc:
            raise CommandError(f"Could not read the arguments ({exc}). "
                               f"Usage: `{command.usage()}`") from None
        return command.name, _bind(command, tokens)

    @staticmethod
    def validate(command: Command, raw: dict[str, Any]) -> BaseModel:
        try:
            return command.args.model_validate(raw)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'arguments'} {plain(e, command.args)}"
                for e in exc.errors(include_url=False))
            raise CommandError(f"Bad arguments for /{command.name}: {problems}. "
                               f"Usage: `{command.usage()}`") from None

    def json_schemas(self) -> dict[str, dict[str, Any]]:
        return {
            name: {"description": c.description, "permission": c.permission,
                   "ephemeral": c.ephemeral, "surface": c.surface,
                   "arguments": c.args.model_json_schema()}
            for name, c in sorted(self.commands.items())
        }


def is_command(text: str) -> bool:
    stripped = text.lstrip()
    return stripped.startswith("/") and len(stripped) > 1 and not stripped.startswith("//")
