"""The output filter: an outbound stage that holds a model's streamed text back to
sentence boundaries and checks each sentence before any channel shows it.

A sentence that carries the tenant's canary (``canary.py``) or a long verbatim run of
its system prompt is replaced; Markdown images and links to hosts outside the tenant's
``[safety] allowed_link_domains`` lose their address (an image is dropped, a link keeps
its words), which is how data leaves through a rendered image or a clicked link; a bare
URL to such a host with a query string is removed; a sentence with a blocked term is
removed; personal data is redacted unless the tenant allows it. These hold when the
model does exactly what an injected instruction says, because they act on what it wrote.

Text is split into sentences the same way while streaming and for the final reply, so
the deltas a channel received still add up to the reply it gets, and the reply the
engine stores is the filtered one (it comes back in the delivery's receipt).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from urllib.parse import urlsplit

from core.messages import InboundMessage
from core.safety.canary import canary_for
from core.safety.detectors import find, redact
from core.safety.input_filter import blocked, normalise
from core.tenants.models import TenantConfig
from core.turns.chain import Next
from core.turns.events import (
    FinalReply,
    Receipt,
    TextDelta,
    ToolCalled,
    ToolReturned,
    TurnEvent,
    TurnFailed,
    TurnStarted,
)
from observability import metrics

LEAK_NOTICE = "[Removed: this would have revealed my instructions.]"
VERBATIM_CHARS = 60
"""A run of the system prompt this long, word for word, counts as a leak."""

_BOUNDARY = re.compile(r"(?<=[.!?])\s+|\n{2,}")
_IMAGE = re.compile(r"!\[([^\]]*)\]\(\s*([^)\s]+)[^)]*\)")
_LINK = re.compile(r"(?<!!)\[([^\]]+)\]\(\s*([^)\s]+)[^)]*\)")
_BARE_URL = re.compile(r"https?://[^\s)>\]]+")


def sentences(text: str) -> tuple[list[str], str]:
    """The complete sentences of ``text`` (each with its trailing whitespace) and the
    rest, not yet ended."""
    done, last = [], 0
    for m in _BOUNDARY.finditer(text):
        done.append(text[last:m.end()])
        last = m.end()
    return done, text[last:]


def _host_allowed(url: str, allowed: frozenset[str]) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    return bool(host) and any(host == d or host.endswith("." + d) for d in allowed)


@dataclass(slots=True)
class _Turn:
    tenant: TenantConfig
    held: str = ""
    streamed: bool = False
    rules: list[str] = field(default_factory=list)
    seen: dict[str, str] = field(default_factory=dict)
    """Each streamed sentence and what was shown for it."""


class OutputFilter:
    """The stage; ``resolve`` finds a turn's tenant from its message (the registry's
    ``for_message``, the same decision the engine made)."""

    def __init__(self, resolve: Callable[[InboundMessage], TenantConfig]) -> None:
        self._resolve = resolve
        self._turns: dict[str, _Turn] = {}

    def check(self, tenant: TenantConfig, sentence: str, rules: list[str]) -> str:
        """One sentence as the channel may show it; the rules it broke go in ``rules``."""
        flat = " ".join(sentence.split())
        if canary_for(tenant.id) in sentence or _verbatim(flat, tenant.persona.system_prompt):
            rules.append("prompt_leak")
            tail = sentence[len(sentence.rstrip()):]
            return LEAK_NOTICE + (tail or " ")
        if blocked(normalise(sentence), tenant.safety) is not None:
            rules.append("blocked_out")
            return "[Removed.]" + (sentence[len(sentence.rstrip()):] or " ")
        allowed = frozenset(d.lower() for d in tenant.safety.allowed_link_domains)

        def image(m: re.Match[str]) -> str:
            if _host_allowed(m.group(2), allowed):
                return m.group(0)
            rules.append("image_link")
            return ""

        def link(m: re.Match[str]) -> str:
            if _host_allowed(m.group(2), allowed) or not m.group(2).startswith("http"):
                return m.group(0)
            rules.append("link")
            return m.group(1)

        def bare(m: re.Match[str]) -> str:
            url = m.group(0)
            if _host_allowed(url, allowed) or not urlsplit(url).query:
                return url
            rules.append("link")
            return "[link removed]"

        sentence = _BARE_URL.sub(bare, _LINK.sub(link, _IMAGE.sub(image, sentence)))
        if tenant.safety.pii_action != "allow":
            findings = find(sentence)
            if findings:
                rules.extend(f"pii_{f.kind}_out" for f in findings)
                sentence = redact(sentence, findings)
        return sentence

    def filter_text(self, tenant: TenantConfig, text: str, rules: list[str],
                    seen: dict[str, str] | None = None) -> str:
        """``seen``: sentences already checked while streaming (the final reply repeats
        them), so each is checked once."""
        done, rest = sentences(text)
        known = seen or {}
        return "".join(known[s] if s in known else self.check(tenant, s, rules)
                       for s in [*done, rest] if s)

    def _checked(self, turn: _Turn, sentence: str) -> str:
        shown = self.check(turn.tenant, sentence, turn.rules)
        turn.seen[sentence] = shown
        return shown

    async def __call__(self, event: TurnEvent, next_stage: Next) -> Receipt:
        match event:
            case TurnStarted(turn_id=turn_id, message=message):
                self._turns[turn_id] = _Turn(self._resolve(message))
                return await next_stage(event)
            case TextDelta(turn_id=turn_id, text=text) if turn_id in self._turns:
                turn = self._turns[turn_id]
                turn.streamed = True
                done, turn.held = sentences(turn.held + text)
                if done and not turn.held:
                    # The boundary's whitespace may go on in the next delta: hold the
                    # last sentence until text follows it, so streaming splits exactly
                    # as the final reply will.
                    turn.held = done.pop()
                if not done:
                    return Receipt()
                shown = "".join(self._checked(turn, s) for s in done)
                return await next_stage(TextDelta(turn_id, shown))
            case ToolCalled(turn_id=turn_id) | ToolReturned(turn_id=turn_id) \
                    if turn_id in self._turns:
                await self._flush(turn_id, next_stage)
                return await next_stage(event)
            case FinalReply(turn_id=turn_id, reply=reply) | TurnFailed(
                    turn_id=turn_id, reply=reply) if turn_id in self._turns:
                turn = self._turns.pop(turn_id)
                if not turn.streamed:  # a command's reply, not a model's text
                    return await next_stage(event)
                if turn.held:
                    await self._flush(turn_id, next_stage, turn)
                text = self.filter_text(turn.tenant, reply.text, turn.rules, turn.seen)
                for rule in sorted(set(turn.rules)):
                    metrics.SAFETY_EVENTS.labels(turn.tenant.id, "", rule, "filtered").inc()
                if text == reply.text:
                    return await next_stage(event)
                filtered = replace(reply, text=text)
                out = FinalReply(turn_id, filtered) if isinstance(event, FinalReply) \
                    else TurnFailed(turn_id, filtered)
                receipt = await next_stage(out)
                return replace(receipt, delivered=filtered)
        return await next_stage(event)

    async def _flush(self, turn_id: str, next_stage: Next, turn: _Turn | None = None) -> None:
        turn = turn or self._turns[turn_id]
        if turn.held:
            held, turn.held = turn.held, ""
            await next_stage(TextDelta(turn_id, self._checked(turn, held)))


@functools.lru_cache(maxsize=256)
def _shingles(prompt: str) -> frozenset[str]:
    """Every ``VERBATIM_CHARS``-long run of a system prompt (whitespace collapsed), built
    once per prompt: a sentence is then checked in one pass, not against the prompt at
    every offset."""
    flat = " ".join(prompt.split())
    return frozenset(flat[i:i + VERBATIM_CHARS]
                     for i in range(len(flat) - VERBATIM_CHARS + 1))


def _verbatim(text: str, prompt: str) -> bool:
    """Whether ``text`` repeats ``VERBATIM_CHARS`` consecutive characters of ``prompt``."""
    if len(text) < VERBATIM_CHARS:
        return False
    runs = _shingles(prompt)
    return bool(runs) and any(text[i:i + VERBATIM_CHARS] in runs
                              for i in range(len(text) - VERBATIM_CHARS + 1))
