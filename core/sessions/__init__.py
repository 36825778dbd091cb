"""Threaded conversations: one stored document per message, keyed by (tenant, channel, thread)."""

from core.sessions.models import ConversationKey, StoredMessage
from core.sessions.store import SessionStore

__all__ = ["ConversationKey", "SessionStore", "StoredMessage"]
