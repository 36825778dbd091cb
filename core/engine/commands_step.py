"""Running a command inside a turn, through the one executor (``core/commands``), and
the user's answer to a side-effecting tool call parked for confirmation."""

from __future__ import annotations

from core.commands.executor import Caller, CommandExecutor
from core.commands.registry import CommandError
from core.commands.services import ServiceFactory
from core.engine.confirmations import CONFIRM, Confirmations
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
    if call is not None and call.name == CONFIRM:
        return await _confirmed(turn, deps, run, str(call.args.get("id", "")),
                                call.args.get("decision") == "yes")
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


async def _confirmed(turn: Turn, deps: EngineDeps, run: CommandExecutor, action_id: str,
                     yes: bool) -> Reply:
    """A Confirm or Cancel click: runs the parked call once, only for the user it was
    proposed to, in the conversation it was proposed in, with their permission checked
    again; another tenant's, an expired or an already answered one does nothing."""
    tenant, key, message = turn.require_tenant(), turn.require_key(), turn.message
    turn.route = "command"
    confirmations = Confirmations(deps.state)
    pending = await confirmations.get(tenant.id, action_id)
    if pending is None:
        return Reply("That request has expired or was already answered; nothing was changed.",
                     kind="refusal", ephemeral=True)
    if pending.user_id != message.author.id or (pending.channel, pending.thread) != \
            (key.channel, key.thread):
        return Reply("Only the person it was proposed to can confirm this, in its own "
                     "conversation.", kind="refusal", ephemeral=True)
    if not await confirmations.claim(pending):
        return Reply("That request was already answered; nothing more was changed.",
                     kind="refusal", ephemeral=True)
    caller = Caller(tenant, message, key, is_admin(tenant, message), "tool")
    if not yes:
        await run.audit(caller, pending.tool, pending.args, "cancelled")
        return Reply(f"Cancelled — I did not do it: {pending.description}.", kind="command")
    done = await run.invoke(pending.tool, pending.args, caller)
    if done.status == "error":
        return Reply(done.message, kind="apology")
    if not done.ok or done.result is None:
        return Reply(done.message, kind="refusal", ephemeral=True)
    return Reply(f"Done: {pending.description}.\n\n{done.result.text}", kind="command")
