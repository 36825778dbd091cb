"""The narrow interface between the engine and whatever writes the answer."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from core.knowledge.base import Passage
from core.sessions.models import TurnUsage

DeltaCallback = Callable[[str], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class ChatTurn:
    role: Literal["user", "assistant"]
    content: str
    speaker: str = ""
    """Set for a message by another participant of a shared thread (their name): the
    prompt quotes it as data, since only the asking user instructs the model."""


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A tool offered to the model: its name, what it does, its arguments' JSON Schema."""

    name: str
    description: str
    parameters: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A call the model asked for; ``arguments`` is the raw JSON text it wrote."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class ToolStep:
    """One earlier step of the agent loop: what the model said and called, and what each
    call returned (by call id), replayed to the model on the next step."""

    text: str
    calls: tuple[ToolCall, ...]
    results: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class AnswerRequest:
    system_prompt: str
    question: str
    history: tuple[ChatTurn, ...] = ()
    passages: tuple[Passage, ...] = ()
    knowledge_loaded: bool = False
    model: str = ""
    fallback_models: tuple[str, ...] = ()
    max_output_tokens: int = 800
    temperature: float = 0.2
    timeout_s: float = 30.0
    """Per attempt, for the whole stream."""
    max_attempts: int = 3
    budget_s: float = 45.0
    """For the whole answer: every attempt, back-off and fallback model together."""
    prices: tuple[float | None, float | None] = (None, None)
    tools: tuple[ToolSpec, ...] = ()
    steps: tuple[ToolStep, ...] = ()
    canary: str = ""
    """The tenant's canary token, written into the system prompt (``core/safety``)."""


@dataclass(frozen=True, slots=True)
class Answer:
    text: str
    usage: TurnUsage = field(default_factory=TurnUsage)
    interrupted: bool = False
    tool_calls: tuple[ToolCall, ...] = ()
    """Set when the model asked for tools instead of (or after) writing text."""


class AnswerUnavailable(RuntimeError):
    """No model produced an answer (all attempts and fallbacks failed). Safe to show."""

    def __init__(self, reason: str, partial: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.partial = partial


class Answerer(Protocol):
    name: str
    metered: bool
    """True when answers consume the tenant's token budget."""
    supports_tools: bool
    """True when the model can be offered tools (``AnswerRequest.tools``)."""

    async def answer(self, request: AnswerRequest, on_delta: DeltaCallback) -> Answer: ...

    async def ping(self) -> None: ...

    async def close(self) -> None: ...
