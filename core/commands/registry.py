"""The command registry: a command is declared once and every channel can run it.

A declaration names the command, describes it, gives a pydantic model for its arguments
(whose JSON Schema adapters use to build native slash commands) and says who may run it.
Parsing turns ``/name args`` into a validated argument model or a usage message.
"""

from __future__ import annotations

import shlex
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from core.messages import CommandCall, InboundMessage
from core.sessions.models import ConversationKey
from core.tenants.models import TenantConfig

if TYPE_CHECKING:
    from core.commands.services import CommandServices

Permission = Literal["anyone", "admin"]


class NoArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True, slots=True)
class CommandContext:
    tenant: TenantConfig
    message: InboundMessage
    key: ConversationKey
    is_admin: bool
    services: CommandServices


@dataclass(frozen=True, slots=True)
class CommandResult:
    text: str
    ephemeral: bool = False


Handler = Callable[[CommandContext, Any], Awaitable[CommandResult]]


@dataclass(frozen=True, slots=True)
class Command:
    name: str
    description: str
    handler: Handler
    args: type[BaseModel] = NoArgs
    permission: Permission = "anyone"
    ephemeral: bool = False

    def usage(self) -> str:
        parts = []
        for fname, f in self.args.model_fields.items():
            parts.append(f"<{fname}>" if f.is_required() else f"[{fname}]")
        return " ".join([f"/{self.name}", *parts])

    def help_line(self) -> str:
        admin = " _(admin)_" if self.permission == "admin" else ""
        return f"`{self.usage()}` — {self.description}{admin}"


@dataclass(frozen=True, slots=True)
class Invocation:
    command: Command
    args: BaseModel
    raw_args: str


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

    def available(self, tenant: TenantConfig, is_admin: bool) -> list[Command]:
        return [c for c in sorted(self.commands.values(), key=lambda c: c.name)
                if tenant.command_enabled(c.name) and (is_admin or c.permission == "anyone")]

    def parse(self, text: str, tenant: TenantConfig) -> Invocation:
        """A command typed as text: ``/name positional key=value …``."""
        body = text.strip()[1:]
        name, _, raw_args = body.partition(" ")
        command = self._enabled(name, tenant)
        try:
            tokens = shlex.split(raw_args)
        except ValueError as exc:
            raise CommandError(f"Could not read the arguments ({exc}). "
                               f"Usage: `{command.usage()}`") from None
        return self._validated(command, _bind(command, tokens), raw_args.strip())

    def invoke(self, call: CommandCall, tenant: TenantConfig) -> Invocation:
        """A command delivered as data (``CommandCall``): its arguments go straight to
        the command's model, with the same errors as typed text."""
        command = self._enabled(call.name, tenant)
        return self._validated(command, dict(call.args), "")

    def _enabled(self, name: str, tenant: TenantConfig) -> Command:
        command = self.get(name)
        if command is None or not tenant.command_enabled(command.name):
            raise CommandError(f"Unknown command `/{name}`. Type `/help` to see the commands.")
        return command

    def _validated(self, command: Command, raw: dict[str, Any], text: str) -> Invocation:
        try:
            args = command.args.model_validate(raw)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'arguments'}: {e['msg']}"
                for e in exc.errors(include_url=False))
            raise CommandError(f"Bad arguments for /{command.name}: {problems}. "
                               f"Usage: `{command.usage()}`") from None
        return Invocation(command, args, text)

    def json_schemas(self) -> dict[str, dict[str, Any]]:
        return {
            name: {"description": c.description, "permission": c.permission,
                   "ephemeral": c.ephemeral, "arguments": c.args.model_json_schema()}
            for name, c in sorted(self.commands.items())
        }


def is_command(text: str) -> bool:
    stripped = text.lstrip()
    return stripped.startswith("/") and len(stripped) > 1 and not stripped.startswith("//")
