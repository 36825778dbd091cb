"""The command registry: parsing, usage messages, exported argument schemas."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import BaseModel, Field

from core.commands.builtins import builtin_commands
from core.commands.registry import Command, CommandError, CommandRegistry, CommandResult
from tests.conftest import tenant

ROOT = Path(__file__).resolve().parent.parent


class SearchArgs(BaseModel):
    query: str
    limit: int = Field(5, ge=1, le=20)


async def _noop(ctx: object, args: object) -> CommandResult:
    return CommandResult("")


def registry() -> CommandRegistry:
    commands = builtin_commands()
    commands.register(Command("search", "search the docs", _noop, SearchArgs))
    return commands


def parse(text: str) -> BaseModel:
    commands = registry()
    name, raw = commands.parse_args(text, tenant("acme"))
    command = commands.get(name)
    assert command is not None
    return commands.validate(command, raw)


def test_positional_key_value_and_greedy_text_arguments() -> None:
    assert parse("/search how do refunds work limit=3") == SearchArgs(
        query="how do refunds work", limit=3)
    assert parse('/search "exact phrase"') == SearchArgs(query="exact phrase")
    assert parse("/FORGET me").scope == "me"  # type: ignore[attr-defined]


@pytest.mark.parametrize(("text", "expected"), [
    ("/search", "query is required"),
    ("/search refunds limit=99", "limit must be at most 20"),
    ("/stats 2026-13", "month '2026-13' must be a month as YYYY-MM, e.g. 2026-11"),
    ('/search "unclosed', "Could not read the arguments"),
    ("/whoami extra", "/whoami takes no such argument"),
    ("/nope", "Unknown command `/nope`"),
])
def test_bad_input_gets_a_usage_message(text: str, expected: str) -> None:
    with pytest.raises(CommandError) as raised:
        parse(text)
    assert expected in str(raised.value)


def test_a_command_cannot_be_declared_twice() -> None:
    with pytest.raises(ValueError, match="declared twice"):
        registry().register(Command("help", "again", _noop))


def test_exported_command_schemas_are_current() -> None:
    committed = json.loads((ROOT / "docs" / "commands.schema.json").read_text())
    assert committed == json.loads(json.dumps(builtin_commands().json_schemas())), (
        "docs/commands.schema.json is stale: run `switchboard commands schema > "
        "docs/commands.schema.json`")


def test_a_structured_call_is_validated_without_any_text_parsing() -> None:
    commands = registry()
    search = commands.get("search")
    assert search is not None
    tricky = 'it\'s "quoted" = with spaces'
    assert commands.validate(search, {"query": tricky, "limit": 3}).model_dump() == {
        "query": tricky, "limit": 3}
    with pytest.raises(CommandError, match="limit"):
        commands.validate(search, {"query": "x", "limit": 99})
