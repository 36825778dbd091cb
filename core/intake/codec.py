"""Messages and stored turns as plain JSON for the journal, and back.

An attachment keeps its name, URL, type and size but not its download function (that
holds a platform credential and cannot be written down); a replayed message whose files
were never fetched says so through the command that needed them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from core.messages import (
    CHANNELS,
    Attachment,
    Author,
    Binding,
    Channel,
    CommandCall,
    InboundMessage,
)
from core.sessions.models import ConversationKey, Role, StoredMessage, TurnUsage


def message_to_dict(m: InboundMessage) -> dict[str, Any]:
    return {
        "channel": m.binding.channel, "binding": m.binding.value, "thread": m.thread,
        "author": {"id": m.author.id, "name": m.author.display_name,
                   "roles": sorted(m.author.roles), "is_bot": m.author.is_bot},
        "text": m.text, "platform_message_id": m.platform_message_id,
        "attachments": [{"name": a.name, "url": a.url, "content_type": a.content_type,
                         "size": a.size} for a in m.attachments],
        "received_at": m.received_at.isoformat(), "revision": m.revision,
        "request_id": m.request_id, "tenant_id": m.tenant_id,
        **({"command": {"name": m.command.name, "args": dict(m.command.args)}}
           if m.command is not None else {}),
    }


def message_from_dict(d: dict[str, Any]) -> InboundMessage:
    channel = d["channel"]
    if channel not in CHANNELS:
        raise ValueError(f"unknown channel {channel!r}")
    author = d.get("author") or {}
    return InboundMessage(
        binding=Binding(cast(Channel, channel), str(d["binding"])), thread=str(d["thread"]),
        author=Author(str(author.get("id", "")), str(author.get("name", "")),
                      frozenset(author.get("roles") or ()), bool(author.get("is_bot"))),
        text=str(d.get("text", "")), platform_message_id=str(d["platform_message_id"]),
        attachments=tuple(Attachment(str(a.get("name", "")), str(a.get("url", "")),
                                     str(a.get("content_type", "")), int(a.get("size", 0)))
                          for a in d.get("attachments") or ()),
        received_at=datetime.fromisoformat(d["received_at"]),
        revision=str(d.get("revision", "")), request_id=str(d.get("request_id", "")),
        tenant_id=str(d.get("tenant_id", "")),
        command=CommandCall(str(d["command"]["name"]), dict(d["command"].get("args") or {}))
        if isinstance(d.get("command"), dict) else None)


def stored_to_dict(m: StoredMessage) -> dict[str, Any]:
    return {
        "tenant": m.key.tenant, "channel": m.key.channel, "thread": m.key.thread,
        "role": m.role, "text": m.text, "user_id": m.user_id, "turn_id": m.turn_id,
        "at": m.at.isoformat(), "expires_at": m.expires_at.isoformat(),
        "platform_message_id": m.platform_message_id, "author_name": m.author_name,
        "kind": m.kind, "usage": {"model": m.usage.model,
                                  "prompt_tokens": m.usage.prompt_tokens,
                                  "completion_tokens": m.usage.completion_tokens,
                                  "cost_usd": m.usage.cost_usd},
        "citations": [dict(c) for c in m.citations], "trace": m.trace,
        "grounding": m.grounding, "confidence": m.confidence,
    }


def stored_from_dict(d: dict[str, Any]) -> StoredMessage:
    return StoredMessage(
        key=ConversationKey(d["tenant"], d["channel"], d["thread"]),
        role=cast(Role, d["role"]), text=d["text"], user_id=d["user_id"],
        turn_id=d["turn_id"], at=datetime.fromisoformat(d["at"]),
        expires_at=datetime.fromisoformat(d["expires_at"]),
        platform_message_id=d.get("platform_message_id", ""),
        author_name=d.get("author_name", ""), kind=d.get("kind", ""),
        usage=TurnUsage(**(d.get("usage") or {})),
        citations=tuple(d.get("citations") or ()), trace=d.get("trace"),
        grounding=d.get("grounding", ""), confidence=d.get("confidence"))
