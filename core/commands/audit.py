"""The audit trail of admin commands and tool calls: who ran what, where, how it ended.

Arguments are stored only as a SHA-256 hash: enough to match a record to a known input,
never enough to leak a secret someone pasted into a command.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol

Outcome = Literal["ok", "refused", "usage", "error", "proposed", "cancelled"]
"""``proposed``: a side-effecting tool call parked for the user's confirmation;
``cancelled``: the user said no."""


@dataclass(frozen=True, slots=True)
class AuditRecord:
    tenant: str
    channel: str
    user_id: str
    command: str
    args_sha256: str
    outcome: Outcome
    at: datetime
    request_id: str = ""
    via: str = "text"
    """How it arrived: ``text``, ``call`` (platform data) or ``tool`` (the model)."""
    duration_ms: float = 0.0


def hash_args(args: dict[str, Any] | str) -> str:
    raw = args if isinstance(args, str) else json.dumps(args, sort_keys=True, default=str)
    return hashlib.sha256(raw.encode()).hexdigest()


class AuditLog(Protocol):
    async def record(self, entry: AuditRecord) -> None: ...

    async def recent(self, tenant: str, limit: int) -> list[AuditRecord]: ...
