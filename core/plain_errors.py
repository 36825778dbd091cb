"""Validation errors in plain words, for the people who write tenant files and commands.

Pydantic's messages speak to programmers ("Extra inputs are not permitted", "String
should match pattern '^(|pk_…)$'"). These say what is wrong and what would be right:
an unknown key gets the closest known one ("did you mean"), a pattern gets the shape a
value must have, numbers their bounds.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel

SHAPES: Mapping[str, str] = {
    r"^(|pk_[A-Za-z0-9_]{4,64})$": "must be empty or pk_ followed by 4 to 64 letters, "
                                   "digits or _ (for example pk_acme_site)",
    r"^[a-z0-9_-]{1,32}$": "must be 1 to 32 lower-case letters, digits, - or _",
    r"^#[0-9a-fA-F]{6}$": "must be a colour like #4f46e5",
    r"^/[a-z0-9_-]{1,31}$": "must be a slash command like /switchboard",
    r"^\d{5,25}$": "must be a Discord id: 5 to 25 digits, in quotes",
    r"^[a-z0-9_]{1,64}$": "must be a tool or command name: lower-case letters, digits, _",
    r"^(all-MiniLM-L6-v2|openai:[\w.-]+)$": "must be all-MiniLM-L6-v2 or openai:<model>, "
                                            "e.g. openai:text-embedding-3-small",
    r"^\d{4}-(0[1-9]|1[0-2])$": "must be a month as YYYY-MM, e.g. 2026-11",
}


def did_you_mean(word: str, known: Iterable[str]) -> str:
    """`` — did you mean `x`?`` when something known is close to ``word``, else ""."""
    close = difflib.get_close_matches(word, list(known), n=1, cutoff=0.6)
    return f" — did you mean `{close[0]}`?" if close else ""


def _fields_at(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """The field names of the (nested) model that holds ``loc``'s last part."""
    current: Any = model
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        fields = getattr(current, "model_fields", {})
        if part not in fields:
            return []
        annotation = fields[part].annotation
        args = getattr(annotation, "__args__", ()) or ()
        current = next((a for a in (annotation, *args)
                        if isinstance(a, type) and issubclass(a, BaseModel)), None)
        if current is None:
            return []
    return list(getattr(current, "model_fields", {}))


def plain(error: Mapping[str, Any], model: type[BaseModel] | None = None) -> str:
    """One pydantic error (``exc.errors()[i]``) as a sentence."""
    kind, ctx = error.get("type", ""), error.get("ctx") or {}
    loc = tuple(error.get("loc", ()))
    if kind == "extra_forbidden":
        known = _fields_at(model, loc) if model is not None and loc else []
        name = str(loc[-1]) if loc else ""
        return "is not a known setting" + did_you_mean(name, known)
    if kind == "missing":
        return "is required"
    if kind == "string_pattern_mismatch":
        shape = SHAPES.get(str(ctx.get("pattern", "")))
        given = error.get("input")
        return (f"{given!r} {shape}" if shape else
                f"{given!r} does not have the expected form ({ctx.get('pattern')})")
    if kind in ("greater_than_equal", "greater_than"):
        return f"must be at least {ctx.get('ge', ctx.get('gt'))}"
    if kind in ("less_than_equal", "less_than"):
        return f"must be at most {ctx.get('le', ctx.get('lt'))}"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return "must be a whole number"
    if kind in ("float_type", "float_parsing"):
        return "must be a number"
    if kind in ("bool_type", "bool_parsing"):
        return "must be true or false"
    if kind == "string_type":
        return "must be text in quotes"
    if kind == "list_type":
        return 'must be a list, like ["a", "b"]'
    if kind in ("string_too_short", "too_short"):
        return f"is too short (at least {ctx.get('min_length')})"
    if kind in ("string_too_long", "too_long"):
        return f"is too long (at most {ctx.get('max_length')})"
    message = str(error.get("msg", "is not valid"))
    return message.removeprefix("Value error, ")
