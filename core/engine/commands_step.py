"""Running a command inside a turn: permission, parsing, audit."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

from core.commands.audit import AuditRecord, Outcome, hash_args
from core.commands.registry import CommandContext, CommandError
from core.commands.services import CommandServices
from core.engine.context import Turn
from core.engine.deps import EngineDeps
from core.engine.permissions import is_admin
from core.replies import Reply

log = logging.getLogger("switchboard.commands")

APOLOGY = "Sorry — that command failed on my side. The error was logged; please try again."


async def run_command(turn: Turn, deps: EngineDeps) -> Reply:
    tenant = turn.require_tenant()
    message = turn.message
    admin = is_admin(tenant, message)
    call = message.command
    name = call.name if call is not None else message.text.strip()[1:].partition(" ")[0]
    command = deps.commands.get(name.lower())
    audited = hash_args(json.dumps(dict(call.args), sort_keys=True, default=str)
                        if call is not None else message.text.strip())

    async def audit(outcome: Outcome) -> None:
        if command is None or command.permission != "admin":
            return
        await deps.audit.record(AuditRecord(
            tenant=tenant.id, channel=message.channel, user_id=message.author.id,
            command=command.name, args_sha256=audited,
            outcome=outcome, at=datetime.now(UTC), request_id=message.request_id))

    if command is not None and command.permission == "admin":
        turn.route = "admin_command"
        if not admin:
            await audit("refused")
            log.warning("admin command refused", extra={"command": command.name,
                                                        "user": message.author.id})
            return Reply(f"`/{command.name}` is for {tenant.name} admins only.",
                         kind="refusal", ephemeral=True)
    else:
        turn.route = "command"
    try:
        invocation = deps.commands.invoke(call, tenant) if call is not None \
            else deps.commands.parse(message.text, tenant)
    except CommandError as exc:
        await audit("usage")
        return Reply(str(exc), kind="refusal", ephemeral=True)
    services = CommandServices(deps.sessions, deps.usage, deps.tenants, deps.audit,
                               deps.commands, deps.knowledge)
    ctx = CommandContext(tenant, message, turn.require_key(), admin, services)
    try:
        result = await invocation.command.handler(ctx, invocation.args)
    except Exception:
        log.exception("command /%s failed", invocation.command.name)
        await audit("error")
        return Reply(APOLOGY, kind="apology", ephemeral=True)
    await audit("ok")
    return Reply(result.text, kind="command",
                 ephemeral=result.ephemeral or invocation.command.ephemeral)
