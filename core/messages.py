"""The normalized inbound message every channel adapter produces.

Adapters fill in what the platform knows; the engine relies only on these fields. The
conversation key is (tenant, channel, thread): a Slack thread ts, a Discord thread id, a
widget conversation id or a terminal session name, so identical thread ids on two
tenants or two channels never meet.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

Channel = Literal["slack", "discord", "widget", "terminal", "memory"]
CHANNELS: tuple[Channel, ...] = ("slack", "discord", "widget", "terminal", "memory")


@dataclass(frozen=True, slots=True)
class Binding:
    """How a platform identifies the tenant a message belongs to.

    ``value`` is a Slack team id, a Discord guild id, a widget public key, or (terminal
    and memory channels) the tenant id itself.
    """

    channel: Channel
    value: str


@dataclass(frozen=True, slots=True)
class Author:
    """Who sent the message, as the platform reports it.

    ``roles`` carries platform facts an adapter has verified (``"workspace_admin"``,
    ``"manage_guild"``, ``"operator"`` for someone at the server's terminal); the engine
    combines them with the tenant's admin lists.
    """

    id: str
    display_name: str = ""
    roles: frozenset[str] = frozenset()
    is_bot: bool = False


@dataclass(frozen=True, slots=True)
class Attachment:
    """A file sent with a message. ``fetch`` downloads it with the platform's credentials
    (a Slack file needs the bot token), so the engine never needs to know how."""

    name: str
    url: str = ""
    content_type: str = ""
    size: int = 0
    fetch: Callable[[], Awaitable[bytes]] | None = field(default=None, compare=False,
                                                         repr=False)


@dataclass(frozen=True, slots=True)
class CommandCall:
    """A command the user invoked through a platform's own structure (Discord options,
    a Slack file shared "to ingest", a button): its name and arguments as data, so they
    are validated against the command's model directly and never turned into text to be
    parsed again."""

    name: str
    args: Mapping[str, object] = field(default_factory=dict)

    @classmethod
    def confirmation(cls, action_id: str, confirmed: bool) -> CommandCall:
        """A Confirm (or Cancel) click on a tool call the model proposed; ``action_id``
        is the button's value (``core/engine/confirmations.py``)."""
        return cls(CONFIRM, {"id": action_id, "decision": "yes" if confirmed else "no"})


CONFIRM = "confirm_action"
"""The command a confirmation click carries."""


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """One user message, already translated from its platform.

    ``platform_message_id`` must be stable across redeliveries of the same event: it is
    the dedupe key.

    ``tenant_id`` is the tenant as the adapter decided it at its edge, from what it
    authenticated (Slack: the app whose secret verified the request and the installation
    bolt authorized; Discord: the guild; the widget: the key whose origin was checked;
    the terminal: its command line). The engine takes it and never looks at the binding,
    so no later field of a payload can move the message to another tenant. Left empty
    (tests of the registry's resolution), the engine resolves the binding.
    """

    binding: Binding
    thread: str
    author: Author
    text: str
    platform_message_id: str
    attachments: tuple[Attachment, ...] = ()
    received_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    revision: str = ""
    """Set for an edited message: a new revision is a new delivery, not a duplicate."""
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex[:16])
    tenant_id: str = ""
    command: CommandCall | None = None
    """Set when the platform delivered a structured command; ``text`` is then only what
    the user saw (for logs and audit), never parsed."""

    @property
    def channel(self) -> Channel:
        return self.binding.channel
