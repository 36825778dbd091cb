"""A Slack request is verified on its raw bytes, then its shape is checked, before bolt.

Bolt reads the body as text under the declared charset and parses it before its own
signature check runs, so invalid UTF-8, an unknown charset, a non-numeric timestamp or
deeply nested JSON crashed the handler for anyone, signed or not. Here the signature is
checked first, on the exact bytes received (``v0:{timestamp}:{body}``, within Slack's
five-minute replay window); only a verified body is decoded and parsed, and its
envelope must have the shape Slack documents (pydantic models below, loose about
fields we do not read, strict about the types of those we do). A tenant that owns its
app can sign anything, so its bodies get the same scrutiny.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from typing import Any
from urllib.parse import parse_qs

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from adapters.http_input import BadInput, parse_json_object

REPLAY_WINDOW_S = 300
_TIMESTAMP = re.compile(r"^\d{1,12}$")
_SIGNATURE = re.compile(r"^v0=[0-9a-f]{64}$")


class _Loose(BaseModel):
    model_config = ConfigDict(extra="allow")


Ref = str | dict[str, Any] | None


class SlackEventShape(_Loose):
    type: str = ""
    subtype: str | None = None
    user: Ref = None
    text: str | None = None
    ts: str | None = None
    thread_ts: str | None = None
    event_ts: str | None = None
    deleted_ts: str | None = None
    channel: Ref = None
    channel_type: str | None = None
    bot_id: str | None = None
    team: str | None = None
    user_team: str | None = None
    files: list[dict[str, Any]] | None = None
    message: dict[str, Any] | None = None
    previous_message: dict[str, Any] | None = None
    tokens: dict[str, Any] | None = None


class Authorization(_Loose):
    team_id: str | None = None
    enterprise_id: str | None = None
    user_id: str | None = None
    is_enterprise_install: bool | None = None


class EventEnvelope(_Loose):
    """An Events API body (also ``url_verification``)."""

    type: str
    team_id: str | None = None
    enterprise_id: str | None = None
    team: Ref = None
    enterprise: Ref = None
    event: SlackEventShape | None = None
    authorizations: list[Authorization] | None = None
    is_ext_shared_channel: bool | None = None
    challenge: str | None = None


class Action(_Loose):
    action_id: str
    value: str = ""
    action_ts: str = ""


class InteractiveEnvelope(_Loose):
    """The ``payload`` of a button click, shortcut or other interactivity request."""

    type: str
    user: dict[str, Any] | None = None
    team: Ref = None
    enterprise: Ref = None
    channel: dict[str, Any] | None = None
    message: dict[str, Any] | None = None
    actions: list[Action] | None = Field(None, min_length=1)
    trigger_id: str | None = None
    callback_id: str | None = None


def verify(secret: str, raw: bytes, timestamp: str, signature: str,
           now: float | None = None) -> bool:
    """Slack's v0 signature over the exact bytes received, within the replay window."""
    if not (_TIMESTAMP.match(timestamp) and _SIGNATURE.match(signature)):
        return False
    if abs((time.time() if now is None else now) - int(timestamp)) > REPLAY_WINDOW_S:
        return False
    expected = hmac.new(secret.encode(), b"v0:" + timestamp.encode() + b":" + raw,
                        hashlib.sha256).hexdigest()
    return hmac.compare_digest(signature.encode(), f"v0={expected}".encode())  # ASCII: checked


def check_shape(text: str, content_type: str) -> None:
    """Raise ``BadInput`` unless the verified body has a shape bolt and the listeners can
    read. The JSON-or-form decision is bolt's own (``parse_body``)."""
    try:
        if content_type.startswith("application/json") or text.lstrip().startswith("{"):
            EventEnvelope.model_validate(parse_json_object(text))
            return
        form = parse_qs(text, keep_blank_values=True)
        if "payload" in form:
            InteractiveEnvelope.model_validate(parse_json_object(form["payload"][0],
                                                                 "the payload field"))
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise BadInput(400, f"not a Slack request body: {where}: {first['msg']}") from None
