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


def test_positional_key_value_and_greedy_text_arguments() -> None:
    acme = tenant("acme")
    parsed = registry().parse("/search how do refunds work limit=3", acme)
    assert parsed.args == SearchArgs(query="how do refunds work", limit=3)
    assert registry().parse('/search "exact phrase"', acme).args == SearchArgs(
        query="exact phrase")
    assert registry().parse("/FORGET me", acme).args.scope == "me"  # type: ignore[attr-defined]


@pytest.mark.parametrize(("text", "expected"), [
    ("/search", "query: Field required"),
    ("/search refunds limit=99", "limit: Input should be less than or equal to 20"),
    ('/search "unclosed', "Could not read the arguments"),
    ("/whoami extra", "/whoami takes no such argument"),
    ("/nope", "Unknown command `/nope`"),
])
def test_bad_input_gets_a_usage_message(text: str, expected: str) -> None:
    with pytest.raises(CommandError) as raised:
        registry().parse(text, tenant("acme"))
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
    from core.messages import CommandCall
    acme = tenant("acme")
    tricky = 'it\'s "quoted" = with spaces'
    invocation = registry().invoke(CommandCall("search", {"query": tricky, "limit": 3}), acme)
    assert invocation.args.model_dump() == {"query": tricky, "limit": 3}
    with pytest.raises(CommandError, match="limit"):
        registry().invoke(CommandCall("search", {"query": "x", "limit": 99}), acme)
    with pytest.raises(CommandError, match="Unknown command"):
        registry().invoke(CommandCall("nope"), acme)
