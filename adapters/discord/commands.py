"""The command registry as Discord application commands, and back.

Each registry command becomes a guild slash command with typed options taken from its
pydantic argument model, so Discord validates and autocompletes what it can. An
interaction comes back as a ``CommandCall`` — its name and option values as data,
typed by discord.py's own payload TypedDicts — which the engine's command executor
validates, permits and audits exactly as a command typed anywhere else.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from core.engine import Command
from core.messages import CommandCall

if TYPE_CHECKING:  # discord.types is for type checkers only (it cannot be imported)
    from discord.types.interactions import ChatInputApplicationCommandInteractionData

STRING, INTEGER, BOOLEAN, NUMBER = 3, 4, 5, 10
_TYPES = {"string": STRING, "integer": INTEGER, "boolean": BOOLEAN, "number": NUMBER}


def _option_type(schema: dict[str, Any]) -> int:
    kinds = [schema, *schema.get("anyOf", [])]
    for kind in kinds:
        if kind.get("type") in _TYPES and kind.get("type") != "null":
            return _TYPES[kind["type"]]
    return STRING


def application_command(command: Command) -> dict[str, Any]:
    """The JSON Discord takes for one CHAT_INPUT command (names and lengths as it limits)."""
    schema = command.args.model_json_schema()
    required = set(schema.get("required", []))
    options = []
    for name, prop in schema.get("properties", {}).items():
        option: dict[str, Any] = {
            "type": _option_type(prop), "name": name.lower()[:32],
            "description": (prop.get("description") or name)[:100],
            "required": name in required}
        if "enum" in prop:
            option["choices"] = [{"name": str(v)[:100], "value": v} for v in prop["enum"][:25]]
        if "minimum" in prop and option["type"] in (INTEGER, NUMBER):
            option["min_value"] = prop["minimum"]
        options.append(option)
    options.sort(key=lambda o: not o["required"])  # Discord wants required ones first
    description = command.description + (" (admins)" if command.permission == "admin" else "")
    return {"type": 1, "name": command.name, "description": description[:100],
            "options": options}


def _options(data: ChatInputApplicationCommandInteractionData
             ) -> list[tuple[str, object]]:
    """Top-level option values (registry commands have no sub-commands)."""
    options: list[Mapping[str, Any]] = list(data.get("options") or [])
    return [(str(o["name"]), o.get("value")) for o in options]


def interaction_call(data: ChatInputApplicationCommandInteractionData) -> CommandCall:
    """The command and its options as data, for the executor to validate directly."""
    return CommandCall(str(data.get("name", "")), dict(_options(data)))


def interaction_text(data: ChatInputApplicationCommandInteractionData) -> str:
    """``/name key=value …``: how the invocation reads in logs (never parsed)."""
    parts = [f"/{data.get('name', '')}"]
    for name, value in _options(data):
        if isinstance(value, bool):
            value = "true" if value else "false"
        parts.append(f"{name}={shlex.quote(str(value))}")
    return " ".join(parts)
