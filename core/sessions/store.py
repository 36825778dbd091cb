"""The narrow interface to conversation storage (MongoDB in every deployment).

All reads and deletions take the tenant explicitly; there is no call that can reach
across tenants. Implementations must bound every call with a timeout.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from core.sessions.models import ConversationKey, StoredMessage, TenantStats, ThreadSummary


class StoreUnavailable(RuntimeError):
    """The conversation store could not be reached in time. The engine answers without
    history and journals the turn locally instead of losing it."""


class SessionStore(Protocol):
    async def recent(self, key: ConversationKey, limit: int) -> list[StoredMessage]:
        """The last ``limit`` messages of a thread, oldest first."""
        ...

    async def transcript(self, key: ConversationKey, limit: int) -> list[StoredMessage]:
        """The last ``limit`` messages of a thread with their citations, oldest first:
        what a channel shows when it restores a conversation (the widget on reload)."""
        ...

    async def append(self, messages: list[StoredMessage]) -> None:
        """Store messages of one turn in one round trip. Idempotent: a message already
        stored (same turn and role) is not stored twice, so a write-back may repeat."""
        ...

    async def has_message(self, key: ConversationKey, platform_message_id: str) -> bool:
        """Whether a user message with this platform id is stored in the conversation:
        the dedupe of last resort while the shared state is down."""
        ...

    async def forget_thread(self, key: ConversationKey) -> int: ...

    async def remove_turn(self, key: ConversationKey, platform_message_id: str
                          ) -> tuple[str, str] | None:
        """Delete the turn a user message started (both messages).

        Returns (turn id, the reply's platform message id) or None if there is no such turn.
        """
        ...

    async def forget_user(self, tenant: str, user_id: str) -> int:
        """Delete what a user wrote and redact the answers they received.

        Usage figures on redacted answers stay (they are billing records, not personal data).
        """
        ...

    async def user_threads(self, tenant: str, user_id: str, limit: int) -> list[ThreadSummary]:
        ...

    async def stats(self, tenant: str, since: datetime) -> TenantStats: ...

    async def since(self, tenant: str, since: datetime, limit: int) -> list[StoredMessage]:
        """The tenant's messages from ``since``, newest first, at most ``limit`` (the
        operators' console reads its periods through this)."""
        ...

    async def threads(self, tenant: str, limit: int) -> list[ThreadSummary]:
        """The tenant's most recently active conversations, newest first."""
        ...

    async def of_turns(self, tenant: str, turn_ids: list[str]) -> list[StoredMessage]:
        """The messages of these turns (both sides), of this tenant only."""
        ...

    async def purge_expired(self, now: datetime) -> int:
        """Delete messages past their retention (a TTL index does this on real MongoDB)."""
        ...
