"""Side-effecting tools run only when the user says so.

The model proposes; the user decides. When the model calls a tool that changes
something (``Command.writes``: ingesting, tagging, forgetting, reloading) the call is
not run unless the user's own message asked for exactly that action — the command's
verb and every argument value appear in what the user typed. Otherwise it is parked
here as a ``PendingAction`` and the reply carries two buttons (Slack, Discord, the
widget; a prompt at the terminal). A click arrives as data (``CommandCall(CONFIRM, …)``),
never as text, and runs the parked call once, for the person it was proposed to, in
the conversation it was proposed in, with the clicking user's permissions checked again.

An instruction planted in a document, a web page or another user's message can make
the model call the tool; it cannot make the user's message contain the call, and it
cannot click. Parked actions live in the shared state (Redis across workers) for
``TTL_S`` and are claimed atomically, so a double click or two workers run it once.
"""

from __future__ import annotations

import json
import re
import secrets
import unicodedata
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from core.commands.registry import Command
from core.messages import CONFIRM
from core.replies import CONFIRM_NO, CONFIRM_YES, Action
from core.sessions.models import ConversationKey
from core.state.base import SharedState

__all__ = ["CONFIRM", "Confirmations", "PendingAction", "asked_for", "buttons"]
TTL_S = 15 * 60


@dataclass(frozen=True, slots=True)
class PendingAction:
    id: str
    tenant: str
    channel: str
    thread: str
    user_id: str
    tool: str
    args: dict[str, Any]
    description: str


_POLITE = re.compile(r"^(?:(?:<@[^>]+>|@\w+|please|pls|kindly|hey|hi|ok|okay|now|"
                     r"can|could|would|will|you|bot|switchboard)[\s,:!]+)*")


def asked_for(text: str, command: Command, args: Mapping[str, object]) -> bool:
    """Whether the user's own message asked for exactly this call: it opens with one of
    the command's verbs (after a mention or "please"), and every argument value appears
    in it as a whole word (case and Unicode width folded); an argument left at its
    default needs no mention. "Don't forget to…" is not a
    request to forget; anything short of this gets the confirmation buttons instead."""
    said = _fold(text).strip()
    opening = _POLITE.sub("", said)
    if not any(re.match(rf"{re.escape(v)}\b", opening) for v in command.verbs):
        return False
    fields = command.args.model_fields
    values = [_fold(v).strip().rstrip("/") for name, value in args.items()
              if not (name in fields and fields[name].default == value)  # what not saying gets
              for v in _strings(value)]
    return all(re.search(rf"(?<!\w){re.escape(v)}(?!\w)", said) for v in values if v)


def _strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, (int, float, bool)):
        return [str(value).lower()]
    if isinstance(value, (list, tuple)):
        return [s for item in value for s in _strings(item)]
    return [json.dumps(value, default=str)]  # an object: only a literal copy matches


def _fold(text: str) -> str:
    return unicodedata.normalize("NFKC", text).casefold()


def describe(command: Command, args: Mapping[str, object]) -> str:
    shown = ", ".join(f"{k}: {_short(v)}" for k, v in args.items())
    return f"{command.label or command.name}" + (f" ({shown})" if shown else "")


def _short(value: object) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return f"`{text[:200].replace('`', chr(39))}`"


def buttons(pending: PendingAction) -> tuple[Action, ...]:
    return (Action(CONFIRM_YES, "Confirm", pending.id), Action(CONFIRM_NO, "Cancel", pending.id))


def prompt_line(pending: PendingAction) -> str:
    return (f"\n\n**Needs your confirmation:** {pending.description}. Nothing has been changed; "
            "only you can confirm it, within 15 minutes.")


class Confirmations:
    """Parked side-effecting calls, per tenant, in the shared state."""

    def __init__(self, state: SharedState) -> None:
        self._state = state

    async def park(self, key: ConversationKey, user_id: str, command: Command,
                   args: Mapping[str, object]) -> PendingAction:
        pending = PendingAction(secrets.token_urlsafe(12), key.tenant, key.channel, key.thread,
                                user_id, command.name, dict(args), describe(command, args))
        await self._state.cache_set(self._key(key.tenant, pending.id),
                                    json.dumps(asdict(pending)), TTL_S)
        return pending

    async def get(self, tenant: str, action_id: str) -> PendingAction | None:
        """The parked action of this tenant, or None (unknown, expired, another tenant's)."""
        if not re.fullmatch(r"[A-Za-z0-9_-]{8,64}", action_id):
            return None
        raw = await self._state.cache_get(self._key(tenant, action_id))
        if raw is None:
            return None
        try:
            pending = PendingAction(**json.loads(raw))
        except (ValueError, TypeError):
            return None
        return pending if pending.tenant == tenant else None

    async def claim(self, pending: PendingAction) -> bool:
        """True once per action, across workers: the first click wins."""
        claimed = await self._state.first_seen(f"confirm-claim:{pending.tenant}:{pending.id}",
                                               TTL_S)
        if claimed:
            await self._state.cache_delete(self._key(pending.tenant, pending.id))
        return claimed

    @staticmethod
    def _key(tenant: str, action_id: str) -> str:
        return f"confirm:{tenant}:{action_id}"
