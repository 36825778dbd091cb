"""What a command or tool handler is given: who asked, where, and its tenant's services.

Kept apart from the registry so that the services a handler receives and the registry
that declares handlers do not import each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from core.commands.services import TenantServices
from core.messages import InboundMessage
from core.sessions.models import ConversationKey
from core.tenants.models import TenantConfig

Via = Literal["text", "call", "tool"]
"""How the command arrived: typed as text, as platform data (Discord options, a Slack
file or button), or as the model's tool call."""


@dataclass(frozen=True, slots=True)
class CommandContext:
    tenant: TenantConfig
    message: InboundMessage
    key: ConversationKey
    is_admin: bool
    services: TenantServices
    via: Via = "text"
