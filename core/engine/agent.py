"""The bounded agent loop: the model answers, or calls tools and answers on the next step.

Each step is one streamed model call offered the tools this user may run here (from
their role and the tenant's allow-list, ``CommandRegistry.tools_for``). Tool calls go
through the command executor like any command: arguments validated by the tool's
model, permission checked, audited, run with the tenant's own services. An unknown
tool, arguments that are not JSON or fail validation, a refused permission and a tool
that fails all go back to the model as the tool's result (``error: …``); none of them
ends the turn. Passages ``search_knowledge`` finds are numbered after the prompt's, so
the answer's ``[n]`` citations of them become the reply's sources.

Bounds, per tenant (``[tools]``): steps, calls per step, one time budget for the whole
loop, tokens per turn. A tool that changes something (``Command.writes``) runs only if
the user's own message asked for exactly that call; otherwise it is parked for the
user to confirm with a button (``confirmations.py``) and the model is told so. When one
bound runs out the loop stops and the user gets the best
answer so far — the text written so far, or what the tools found — marked as such.
Text streams as it is written, across steps; each call shows in the channel as
``ToolCalled``/``ToolReturned``. The decision trace (steps, calls, outcomes, sizes and
durations, with a hash instead of the arguments) is stored with the turn.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from core.commands.audit import hash_args
from core.commands.executor import Caller, CommandExecutor, Execution
from core.commands.registry import Command
from core.engine.confirmations import Confirmations, PendingAction, asked_for
from core.knowledge.base import Passage
from core.llm.base import (
    Answer,
    Answerer,
    AnswerRequest,
    DeltaCallback,
    ToolCall,
    ToolSpec,
    ToolStep,
)
from core.replies import ToolUse
from core.sessions.models import TurnUsage
from core.turns.events import ToolCalled, ToolOutcome, ToolReturned
from observability import metrics
from observability.tracing import span as child_span

log = logging.getLogger("switchboard.agent")

ToolEvent = ToolCalled | ToolReturned
EmitTool = Callable[[ToolEvent], Awaitable[None]]
STOPPED = {
    "steps": "the limit of {n} steps",
    "time": "its time budget",
    "tokens": "its token budget",
}


@dataclass(slots=True)
class Toolbox:
    """What one turn's loop may use: the offered tools, who calls, where events go."""

    executor: CommandExecutor
    caller: Caller
    offered: Sequence[Command]
    emit: EmitTool
    turn_id: str = ""
    confirmations: Confirmations | None = None
    """Where side-effecting calls wait for the user; None runs none of them."""
    parked: list[PendingAction] = field(default_factory=list)


@dataclass(slots=True)
class AgentResult:
    answer: Answer
    passages: list[Passage]
    tools: list[ToolUse] = field(default_factory=list)
    trace: dict[str, Any] = field(default_factory=dict)
    partial: bool = False


def tool_specs(commands: Sequence[Command]) -> tuple[ToolSpec, ...]:
    return tuple(_spec(c) for c in commands)


@functools.cache
def _spec(command: Command) -> ToolSpec:
    """Built once per command: pydantic's schema generation costs about 0.15 ms a tool,
    which every turn would otherwise pay for every tool it offers. Titles are dropped:
    the model reads names and descriptions, and every byte is sent on every step."""
    return ToolSpec(command.name, command.description,
                    _untitled(command.args.model_json_schema()))


def _untitled(schema: Any) -> Any:
    if isinstance(schema, dict):
        return {k: _untitled(v) for k, v in schema.items()
                if not (k == "title" and isinstance(v, str))}
    if isinstance(schema, list):
        return [_untitled(v) for v in schema]
    return schema


async def run_agent(answerer: Answerer, request: AnswerRequest, passages: list[Passage],
                    box: Toolbox, on_delta: DeltaCallback) -> AgentResult:
    bounds = box.caller.tenant.tools
    specs = tool_specs(box.offered)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + bounds.budget_s
    steps: list[ToolStep] = []
    used: list[ToolUse] = []
    trace_steps: list[dict[str, Any]] = []
    usage, written = TurnUsage(), ""
    found = list(passages)
    stopped = "steps"
    for step_no in range(1, bounds.max_steps + 1):
        remaining = deadline - loop.time()
        if remaining <= 0:
            stopped = "time"
            break
        answer = await answerer.answer(replace(
            request, passages=tuple(found), tools=specs, steps=tuple(steps),
            budget_s=min(request.budget_s, remaining)), on_delta)
        usage = usage.plus(answer.usage)
        written += answer.text
        if not answer.tool_calls or answer.interrupted:
            trace_steps.append({"step": step_no, "text_chars": len(answer.text), "calls": []})
            return _done(box, Answer(written, usage, answer.interrupted), found, used,
                         trace_steps, None)
        calls, results, traced = [], [], []
        for index, call in enumerate(answer.tool_calls):
            content, use, record = await _one_call(
                box, call, step_no, found,
                over=index >= bounds.max_calls_per_step, limit=bounds.max_result_chars)
            calls.append(call)
            results.append((call.id, content))
            used.append(use)
            traced.append(record)
        steps.append(ToolStep(answer.text, tuple(calls), tuple(results)))
        trace_steps.append({"step": step_no, "text_chars": len(answer.text), "calls": traced})
        if usage.total_tokens >= bounds.token_budget:
            stopped = "tokens"
            break
        if deadline - loop.time() <= 0:
            stopped = "time"
            break
    text = written.strip() or _from_tools(steps)
    note = STOPPED[stopped].format(n=bounds.max_steps)
    marked = f"{text}\n\n_(I stopped at {note}, so this is my best answer so far.)_"
    return _done(box, Answer(marked, usage), found, used, trace_steps, stopped)


def _done(box: Toolbox, answer: Answer, found: list[Passage], used: list[ToolUse],
          trace_steps: list[dict[str, Any]], stopped: str | None) -> AgentResult:
    tenant = box.caller.tenant.id
    metrics.AGENT_STEPS.labels(tenant).observe(len(trace_steps))
    trace = {"steps": trace_steps, "offered": [c.name for c in box.offered],
             "stopped": stopped or "", "tokens": answer.usage.total_tokens}
    if stopped:
        log.warning("the agent loop stopped at its bound: %s", stopped,
                    extra={"steps": len(trace_steps)})
    return AgentResult(answer, found, used, trace, partial=stopped is not None)


def _from_tools(steps: Sequence[ToolStep]) -> str:
    """The best answer when the model wrote no text: what the tools returned."""
    lines = []
    for step in steps:
        names = {c.id: c.name for c in step.calls}
        for call_id, content in step.results:
            lines.append(f"• {names.get(call_id, 'tool')}: {content.strip()[:300]}")
    return "Here is what I found so far:\n" + "\n".join(lines[-8:]) if lines else \
        "I could not finish an answer."


async def _one_call(box: Toolbox, call: ToolCall, step: int, found: list[Passage], *,
                    over: bool, limit: int) -> tuple[str, ToolUse, dict[str, Any]]:
    """Run one call; returns what the model is told, what the user sees, the trace."""
    command = next((c for c in box.offered if c.name == call.name), None)
    label = command.label if command is not None else ""
    try:
        args: Any = json.loads(call.arguments or "{}")
        unreadable = ""
    except json.JSONDecodeError as exc:
        args, unreadable = None, str(exc)
    shown = {str(k): v for k, v in args.items()} if isinstance(args, dict) else {}
    await box.emit(ToolCalled(box.turn_id, call.id, call.name[:64], shown, step,
                              label or call.name[:64]))
    started = time.perf_counter()
    outcome: ToolOutcome
    with child_span(f"tool.{call.name[:64]}", attributes={
            "switchboard.tenant": box.caller.tenant.id, "switchboard.step": step}) as span:
        outcome, content, summary = await _decide(box, call, command, args, unreadable,
                                                  found, over)
        span.set_attribute("switchboard.outcome", outcome)
    took = round((time.perf_counter() - started) * 1000, 3)
    if len(content) > limit:
        content = content[:limit] + "\n…(cut)"
    metrics.TOOL_CALLS.labels(box.caller.tenant.id, call.name[:64] if command else "unknown",
                              outcome).inc()
    await box.emit(ToolReturned(box.turn_id, call.id, call.name[:64], outcome, summary, took,
                                step))
    record = {"tool": call.name[:64], "outcome": outcome, "ms": took,
              "args_sha256": hash_args(call.arguments or ""), "result_chars": len(content)}
    return content, ToolUse(call.name[:64], outcome, summary), record


async def _decide(box: Toolbox, call: ToolCall, command: Command | None, args: Any,
                  unreadable: str, found: list[Passage], over: bool
                  ) -> tuple[ToolOutcome, str, str]:
    """What becomes of one call: skipped, refused as invalid, parked for the user, or
    run through the executor."""
    if over:
        return "skipped", "error: too many tool calls in one step; call fewer at a time", \
            "skipped"
    if unreadable:
        return "invalid", f"error: arguments are not JSON ({unreadable})", "invalid arguments"
    if not isinstance(args, dict):
        return "invalid", "error: arguments must be a JSON object", "invalid arguments"
    if command is not None and command.writes and \
            not asked_for(box.caller.message.text, command, args):
        return await _park(box, command, args)
    done = await box.executor.invoke(call.name, args, replace(box.caller, via="tool"))
    return _result(done, found)


async def _park(box: Toolbox, command: Command, args: dict[str, Any]
                ) -> tuple[ToolOutcome, str, str]:
    """A side-effecting call the user did not ask for: not run; parked for them to
    confirm (one a turn), and audited as proposed."""
    if box.confirmations is None or box.parked:
        return "skipped", ("error: not run — only one change can wait for the user's "
                           "confirmation at a time"), "not run"
    box.parked.append(await box.confirmations.park(
        box.caller.key, box.caller.message.author.id, command, args))
    await box.executor.audit(box.caller, command.name, args, "proposed")
    return "confirm", ("not run yet: this changes the workspace, so the user has been asked "
                       "to confirm it with a button. Tell them in one sentence what it "
                       "would do."), "waiting for your confirmation"


def _result(done: Execution, found: list[Passage]) -> tuple[ToolOutcome, str, str]:
    if done.status == "ok" and done.result is not None:
        result = done.result
        if result.passages:
            return "ok", _numbered(result.passages, found), result.summary
        return "ok", result.text, result.summary or "done"
    outcome: ToolOutcome = "error" if done.status == "error" else done.status
    summary = {"refused": "not allowed", "unknown": "no such tool",
               "invalid": "invalid arguments", "error": "failed"}[done.status]
    return outcome, f"error: {done.message}", summary


def _numbered(new: Sequence[Passage], found: list[Passage]) -> str:
    """Passages as sources the answer can cite, numbered after those already given."""
    lines = []
    for passage in new:
        known = next((i for i, p in enumerate(found, start=1)
                      if p.chunk_id == passage.chunk_id), None)
        if known is None:
            found.append(passage)
            known = len(found)
        lines.append(f"[{known}] {passage.title or passage.source}\n{passage.text.strip()}")
    return "\n\n".join(lines)
