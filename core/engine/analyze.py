"""Structured output: text in, JSON that validates against a schema out.

The model is asked for one JSON value matching the schema. Its reply is parsed and
validated (``jsonschema-rs``); on failure the validation errors are fed back and it tries
again, up to ``repairs`` more times. What comes back has always passed the schema; when
no attempt did, the caller gets the last errors (a 422 from the admin API). Schemas
are named (``NAMED_SCHEMAS``) or inline; an inline schema may not reference anything
outside itself (no remote ``$ref`` is ever fetched). Tokens count against the tenant's
monthly budget like answers do.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Literal

import jsonschema_rs

from core.engine import grounding
from core.engine.deps import EngineDeps
from core.llm.base import AnswerUnavailable, ChatTurn
from core.sessions.models import TurnUsage
from core.tenants.models import TenantConfig

log = logging.getLogger("switchboard.analyze")

NAMED_SCHEMAS: dict[str, dict[str, Any]] = {
    "intent": {
        "type": "object", "additionalProperties": False, "required": ["intent", "confidence"],
        "properties": {
            "intent": {"enum": ["question", "request", "complaint", "greeting", "feedback",
                                "other"]},
            "confidence": {"type": "number", "minimum": 0, "maximum": 1}}},
    "sentiment": {
        "type": "object", "additionalProperties": False, "required": ["sentiment", "score"],
        "properties": {"sentiment": {"enum": ["positive", "neutral", "negative"]},
                       "score": {"type": "number", "minimum": -1, "maximum": 1}}},
    "entities": {
        "type": "object", "additionalProperties": False, "required": ["entities"],
        "properties": {"entities": {"type": "array", "items": {
            "type": "object", "additionalProperties": False, "required": ["type", "text"],
            "properties": {"type": {"type": "string"}, "text": {"type": "string"}}}}}},
    "summary": {
        "type": "object", "additionalProperties": False,
        "required": ["summary", "key_points"],
        "properties": {"summary": {"type": "string"},
                       "key_points": {"type": "array", "items": {"type": "string"}}}},
}

_INSTRUCTIONS = (
    "You turn the user's text into data. Reply with exactly one JSON value that is valid "
    "against this JSON Schema, and nothing else: no prose, no code fence.\n\nSchema:\n{schema}")
_REPAIR = ("That reply is not valid against the schema:\n{errors}\n"
           "Reply again with only the corrected JSON value.")


class SchemaProblem(ValueError):
    """The schema itself is unusable (unknown name, invalid, or a remote reference)."""


@dataclass(frozen=True, slots=True)
class Analysis:
    outcome: Literal["ok", "invalid", "unavailable", "budget_exhausted", "unsupported"]
    value: Any = None
    attempts: int = 0
    errors: tuple[str, ...] = ()
    usage: TurnUsage = field(default_factory=TurnUsage)


def _no_remote(uri: str) -> Any:
    raise ValueError(f"schemas may not reference other documents ({uri[:80]})")


def compile_schema(schema: dict[str, Any] | None, name: str | None
                   ) -> tuple[dict[str, Any], jsonschema_rs.Validator]:
    if name is not None:
        if name not in NAMED_SCHEMAS:
            raise SchemaProblem(f"no schema named {name!r}; named schemas: "
                                f"{', '.join(sorted(NAMED_SCHEMAS))}")
        schema = NAMED_SCHEMAS[name]
    if schema is None:
        raise SchemaProblem("give a schema or a schema_name")
    if not jsonschema_rs.meta.is_valid(schema):
        raise SchemaProblem("the schema is not a valid JSON Schema")
    try:
        return schema, jsonschema_rs.validator_for(schema, retriever=_no_remote)
    except (jsonschema_rs.ValidationError, ValueError) as exc:
        raise SchemaProblem(f"the schema cannot be used: {str(exc).splitlines()[0]}") from None


def _parse(text: str) -> Any:
    body = text.strip()
    if body.startswith("```"):
        body = body.split("\n", 1)[1] if "\n" in body else ""
        body = body.rsplit("```", 1)[0]
    return json.loads(body)


def _errors(validator: jsonschema_rs.Validator, value: Any) -> list[str]:
    found = []
    for error in validator.iter_errors(value):
        where = "/".join(str(p) for p in error.instance_path) or "(root)"
        found.append(f"{where}: {error.message}")
        if len(found) == 10:
            break
    return found


async def analyze(deps: EngineDeps, tenant: TenantConfig, text: str,
                  schema: dict[str, Any] | None, name: str | None, repairs: int
                  ) -> Analysis:
    """Raises ``SchemaProblem`` for an unusable schema (before any model call)."""
    shown, validator = compile_schema(schema, name)
    if not deps.answerer.supports_tools:
        return Analysis("unsupported")
    used = await grounding.tokens_over_budget(deps, tenant, datetime.now(UTC))
    if used is not None:
        return Analysis("budget_exhausted")
    history: list[ChatTurn] = []
    question = text
    errors: list[str] = []
    usage = TurnUsage()
    for attempt in range(1, repairs + 2):
        request = replace(grounding.answer_request(tenant, question, (), False, history),
                          system_prompt=_INSTRUCTIONS.format(schema=json.dumps(shown)),
                          temperature=0.0)
        try:
            answer = await deps.answerer.answer(request, _ignore)
        except AnswerUnavailable as exc:
            log.error("no structured output from the model: %s", exc.reason)
            return Analysis("unavailable", attempts=attempt, errors=(exc.reason,), usage=usage)
        usage = usage.plus(answer.usage)
        try:
            value = _parse(answer.text)
            errors = _errors(validator, value)
        except json.JSONDecodeError as exc:
            errors = [f"(root): not JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"]
        if not errors:
            await _account(deps, tenant, usage)
            return Analysis("ok", value, attempt, usage=usage)
        history += [ChatTurn("user", question), ChatTurn("assistant", answer.text)]
        question = _REPAIR.format(errors="\n".join(f"- {e}" for e in errors))
    await _account(deps, tenant, usage)
    return Analysis("invalid", attempts=repairs + 1, errors=tuple(errors), usage=usage)


async def _ignore(_: str) -> None:
    return None


async def _account(deps: EngineDeps, tenant: TenantConfig, usage: TurnUsage) -> None:
    if usage.total_tokens:
        try:
            await deps.usage.record(tenant.id, usage, datetime.now(UTC))
        except Exception:
            log.exception("usage of a structured-output call could not be recorded")
