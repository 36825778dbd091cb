"""The widget's wire format: what a browser may send, validated before anything runs,
and the typed frames of a turn the server sends back.

The same frames travel over the WebSocket and, in the fallback, as JSON bodies of
``POST /widget/v1/messages``. See ``docs/widget.md``.
"""

from __future__ import annotations

from typing import Annotated, Literal, TypedDict

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter


class _Frame(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Hello(_Frame):
    type: Literal["hello"]
    token: str = Field("", max_length=512)
    user_id: str = Field("", max_length=128)
    user_hmac: str = Field("", max_length=128)
    after: int | None = Field(None, ge=0, description="last sequence number seen; resume")


class SendMessage(_Frame):
    type: Literal["message"]
    text: str = Field(min_length=1, max_length=20000)
    client_id: str = Field(pattern=r"^[A-Za-z0-9_-]{6,64}$")


class SendFeedback(_Frame):
    type: Literal["feedback"]
    turn_id: str = Field(min_length=1, max_length=64)
    rating: Literal["up", "down"]


class SendConfirm(_Frame):
    """A click on Confirm or Cancel under a tool call the model proposed."""

    type: Literal["confirm"]
    id: str = Field(pattern=r"^[A-Za-z0-9_-]{8,64}$", description="the button's value")
    decision: Literal["yes", "no"]
    client_id: str = Field(pattern=r"^[A-Za-z0-9_-]{6,64}$")


class Ping(_Frame):
    type: Literal["ping"]


ClientFrame = Annotated[Hello | SendMessage | SendFeedback | SendConfirm | Ping,
                        Field(discriminator="type")]
CLIENT_FRAME: TypeAdapter[Hello | SendMessage | SendFeedback | SendConfirm | Ping] = \
    TypeAdapter(ClientFrame)


class SessionRequest(_Frame):
    """``POST /widget/v1/session``: the fallback transport's hello."""

    key: str = Field(max_length=80)
    token: str = Field("", max_length=512)
    user_id: str = Field("", max_length=128)
    user_hmac: str = Field("", max_length=128)


class PostedFrame(_Frame):
    """``POST /widget/v1/messages``: one frame with the session token it belongs to."""

    key: str = Field(max_length=80)
    token: str = Field(max_length=512)
    frame: Annotated[SendMessage | SendFeedback | SendConfirm, Field(discriminator="type")]


# -- what the server sends to the browser (every frame also carries its ``seq``) --------

class CitationFrame(TypedDict):
    number: int
    title: str
    url: str
    source: str
    snippet: str
    page: str
    """For a source with no web address: the path of its source page on this server
    (``/sources/v1/…``, signed), which the widget opens under its own origin."""


class ToolFrame(TypedDict):
    """A tool the model called: ``running`` when called, then how it ended."""

    type: Literal["tool"]
    client_id: str
    call_id: str
    tool: str
    label: str
    status: str
    summary: str


class TypingFrame(TypedDict):
    """The turn was accepted and an answer is being written."""

    type: Literal["typing"]
    client_id: str
    turn_id: str


class DeltaFrame(TypedDict):
    type: Literal["delta"]
    client_id: str
    text: str


class ReplyFrame(TypedDict):
    type: Literal["reply"]
    client_id: str
    turn_id: str
    kind: str
    text: str
    ephemeral: bool
    retry_after_s: float | None
    citations: list[CitationFrame]
    follow_ups: list[str]
    tools: list[dict[str, str]]
    partial: bool
    confirm: dict[str, str] | None
    """A tool call waiting for the user: ``{"id", "label"}``; the widget shows Confirm
    and Cancel and sends a ``confirm`` frame with the id."""


ServerFrame = TypingFrame | DeltaFrame | ToolFrame | ReplyFrame
