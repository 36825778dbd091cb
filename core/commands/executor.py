"""The one place a command runs, however it arrived.

Typed text (``/stats month=2026-11``), platform data (Discord options, a file shared on
Slack "to ingest", a button) and the model's tool calls all become ``invoke(name, args,
call)``: the command is looked up and checked against the tenant's switches, the
caller's permission is checked, the arguments are validated by the command's pydantic
model, the handler runs with the tenant's own services, and the outcome is audited —
every admin command and every tool call, with a hash of the arguments, the outcome and
how long it took. A failure is an ``Execution`` with a message for the user (or the
model), never an exception.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Literal

from core.commands.audit import AuditLog, AuditRecord, Outcome, hash_args
from core.commands.context import CommandContext, Via
from core.commands.registry import Command, CommandError, CommandRegistry, CommandResult
from core.commands.services import ServiceFactory
from core.messages import InboundMessage
from core.sessions.models import ConversationKey
from core.tenants.models import TenantConfig

log = logging.getLogger("switchboard.commands")

Status = Literal["ok", "refused", "invalid", "unknown", "error"]
FAILED = "Sorry — that command failed on my side. The error was logged; please try again."
_AUDITED: dict[Status, Outcome] = {"ok": "ok", "refused": "refused", "invalid": "usage",
                                   "unknown": "usage", "error": "error"}


@dataclass(frozen=True, slots=True)
class Caller:
    """Who invokes, where, and how — decided by the engine, never by the arguments."""

    tenant: TenantConfig
    message: InboundMessage
    key: ConversationKey
    is_admin: bool
    via: Via = "text"


@dataclass(frozen=True, slots=True)
class Execution:
    status: Status
    command: Command | None
    result: CommandResult | None = None
    message: str = ""
    """Why it did not run, for the user (or, for a tool call, the model)."""
    duration_ms: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status == "ok"


class CommandExecutor:
    def __init__(self, registry: CommandRegistry, audit: AuditLog,
                 services: ServiceFactory) -> None:
        self.registry = registry
        self._audit = audit
        self._services = services

    def parse(self, text: str, tenant: TenantConfig) -> tuple[str, dict[str, Any]]:
        """``/name args`` as a name and raw arguments; raises ``CommandError``."""
        return self.registry.parse_args(text, tenant)

    async def invoke(self, name: str, args: Mapping[str, object], caller: Caller,
                     *, audited_args: str | None = None) -> Execution:
        started = time.perf_counter()
        command = self.registry.get(name)
        digest = hash_args(audited_args if audited_args is not None
                           else json.dumps(dict(args), sort_keys=True, default=str))
        execution = await self._run(command, name, args, caller)
        execution = replace(execution,
                            duration_ms=round((time.perf_counter() - started) * 1000, 3))
        if command is not None and (command.permission == "admin" or caller.via == "tool"):
            await self._record(caller, command.name, digest, execution)
        elif command is None and caller.via == "tool":
            await self._record(caller, name[:64], digest, execution)
        return execution

    async def _run(self, command: Command | None, name: str, args: Mapping[str, object],
                   caller: Caller) -> Execution:
        tenant = caller.tenant
        if command is None or not self.registry.enabled(command, tenant, caller.via):
            return Execution("unknown", None, message=f"Unknown command `/{name}`. "
                             "Type `/help` to see the commands.")
        if command.permission == "admin" and not caller.is_admin:
            log.warning("admin command refused", extra={"command": command.name,
                                                        "user": caller.message.author.id,
                                                        "via": caller.via})
            return Execution("refused", command,
                             message=f"`/{command.name}` is for {tenant.name} admins only.")
        try:
            parsed = self.registry.validate(command, dict(args))
        except CommandError as exc:
            return Execution("invalid", command, message=str(exc))
        ctx = CommandContext(tenant, caller.message, caller.key, caller.is_admin,
                             self._services.for_tenant(tenant), caller.via)
        try:
            result = await command.handler(ctx, parsed)
        except Exception:
            log.exception("command /%s failed", command.name)
            return Execution("error", command, message=FAILED)
        return Execution("ok", command, result)

    async def audit(self, caller: Caller, command: str, args: Mapping[str, object],
                    outcome: Outcome) -> None:
        """Audit what happened to a call that did not run here (proposed, cancelled)."""
        await self._write(caller, command, hash_args(json.dumps(dict(args), sort_keys=True,
                                                                default=str)), outcome, 0.0)

    async def _record(self, caller: Caller, command: str, digest: str,
                      execution: Execution) -> None:
        await self._write(caller, command, digest, _AUDITED[execution.status],
                          execution.duration_ms)

    async def _write(self, caller: Caller, command: str, digest: str, outcome: Outcome,
                     duration_ms: float) -> None:
        try:
            await self._audit.record(AuditRecord(
                tenant=caller.tenant.id, channel=caller.message.channel,
                user_id=caller.message.author.id, command=command, args_sha256=digest,
                outcome=outcome, at=datetime.now(UTC),
                request_id=caller.message.request_id, via=caller.via,
                duration_ms=duration_ms))
        except Exception:
            log.exception("the audit record could not be written")
