"""Running a command inside a turn, through the one executor (``core/commands``)."""

from __future__ import annotations

from core.commands.executor import Caller, CommandExecutor
from core.commands.registry import CommandError
from core.commands.services import ServiceFactory
from core.engine.context import Turn
from core.engine.deps import EngineDeps
from core.engine.permissions import is_admin
from core.replies import Reply


def executor(deps: EngineDeps) -> CommandExecutor:
    """The executor over this process's stores; each call scopes them to one tenant."""
    return CommandExecutor(deps.commands, deps.audit, ServiceFactory(
        deps.sessions, deps.usage, deps.tenants, deps.retriever, deps.commands,
        deps.knowledge))


async def run_command(turn: Turn, deps: EngineDeps) -> Reply:
    tenant = turn.require_tenant()
    message = turn.message
    run = executor(deps)
    call = message.command
    if call is not None:
        name, args, audited, via = call.name, dict(call.args), None, "call"
    else:
        text = message.text.strip()
        audited = text
        via = "text"
        try:
            name, args = run.parse(text, tenant)
        except CommandError as exc:
            return Reply(str(exc), kind="refusal", ephemeral=True)
    command = deps.commands.get(name)
    turn.route = "admin_command" if command is not None and command.permission == "admin" \
        else "command"
    caller = Caller(tenant, message, turn.require_key(), is_admin(tenant, message),
                    "call" if via == "call" else "text")
    done = await run.invoke(name, args, caller, audited_args=audited)
    if done.status == "error":
        return Reply(done.message, kind="apology", ephemeral=True)
    if not done.ok or done.result is None:
        return Reply(done.message, kind="refusal", ephemeral=True)
    assert done.command is not None
    return Reply(done.result.text, kind="command",
                 ephemeral=done.result.ephemeral or done.command.ephemeral)
