"""Who counts as a tenant admin on a given message."""

from __future__ import annotations

from core.messages import InboundMessage
from core.tenants.models import TenantConfig

PLATFORM_ADMIN_ROLES = frozenset({"operator", "platform_admin"})
"""Roles adapters set from verified platform facts: the local operator at the terminal,
a Slack workspace admin/owner, a Discord member with Manage Server."""


def is_admin(tenant: TenantConfig, message: InboundMessage) -> bool:
    author = message.author
    if author.roles & PLATFORM_ADMIN_ROLES:
        return True
    if author.id in tenant.admin_ids(message.channel):
        return True
    if message.channel == "discord":
        return any(f"role:{r}" in author.roles for r in tenant.discord.admin_role_ids)
    return False
