"""What command handlers may use. Built by the engine; scoped by the handler's tenant."""

from __future__ import annotations

from dataclasses import dataclass

from core.commands.audit import AuditLog
from core.commands.registry import CommandRegistry
from core.knowledge.service import KnowledgeService
from core.sessions.store import SessionStore
from core.tenants.registry import TenantRegistry
from core.usage import UsageLedger


@dataclass(frozen=True, slots=True)
class CommandServices:
    sessions: SessionStore
    usage: UsageLedger
    tenants: TenantRegistry
    audit: AuditLog
    commands: CommandRegistry
    knowledge: KnowledgeService | None = None
