"""The output filter: an outbound stage that holds a model's streamed text back to
sentence boundaries and checks each sentence before any channel shows it.

A sentence that carries the tenant's canary (``canary.py``) or a long verbatim run of
its system prompt is replaced; Markdown images and links to hosts outside the tenant's
``[safety] allowed_link_domains`` lose their address (an image is dropped, a link keeps
its words), which is how data leaves through a rendered image or a clicked link (the
hosts of the reply's cited sources are allowed in the final reply); a bare
URL to such a host with a query string is removed; a sentence with a blocked term is
removed; personal data is redacted unless the tenant allows it. These hold when the
model does exactly what an injected instruction says, because they act on what it wrote.
For a tenant with provider moderation on, the answer is held whole and shown once the
provider has checked it (a flagged answer becomes the tenant's blocked reply).

Text is split into sentences the same way while streaming and for the final reply, so
the deltas a channel received still add up to the reply it gets, and the reply the
engine stores is the filtered one (it comes back in the delivery's receipt). Each rule a
turn broke is counted (``switchboard_safety_events_total``) and audited once, with the
turn, its channel and user, never the text.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from urllib.parse import SplitResult, urlsplit

from core.commands.audit import AuditLog, AuditRecord
from core.llm.moderation import ModerationUnavailable, Moderator
from core.messages import InboundMessage
from core.replies import Reply
from core.safety.canary import canary_for
from core.safety.detectors import find, redact
from core.safety.input_filter import blocked
from core.safety.text import decoded_runs, normalise, skeleton
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

log = logging.getLogger("switchboard.safety")

LEAK_NOTICE = "[Removed: this would have revealed my instructions.]"
VERBATIM_CHARS = 60
"""A run of the system prompt this long, word for word, counts as a leak."""
WHOLE_CHARS = 25
"""So does a sentence this long that is all copied from the prompt (one copied at a time)."""

_BOUNDARY = re.compile(r"(?<=[.!?])\s+|\n{2,}")
_IMAGE = re.compile(r"!\[([^\]]*)\]\(\s*([^)\s]+)[^)]*\)")
_LINK = re.compile(r"(?<!!)\[([^\]]+)\]\(\s*([^)\s]+)[^)]*\)")
_BARE_URL = re.compile(r"https?://(?:\[[^\]\s/]*\]?)?[^\s)>\]]*")


def sentences(text: str) -> tuple[list[str], str]:
    """The complete sentences of ``text`` (each with its trailing whitespace) and the
    rest, not yet ended."""
    done, last = [], 0
    for m in _BOUNDARY.finditer(text):
        done.append(text[last:m.end()])
        last = m.end()
    return done, text[last:]


def _parts(url: str) -> SplitResult | None:
    try:
        return urlsplit(url)
    except ValueError:  # "http://[::1" and other addresses no browser would open
        return None


def _host(url: str) -> str:
    parts = _parts(url)
    return (parts.hostname or "").lower() if parts is not None else ""


def _query(url: str) -> bool:
    """Whether ``url`` carries a query; an address that does not parse counts as one."""
    parts = _parts(url)
    return parts is None or bool(parts.query)


def _host_allowed(url: str, allowed: frozenset[str]) -> bool:
    host = _host(url)
    return bool(host) and any(host == d or host.endswith("." + d) for d in allowed)


def cited_hosts(reply: Reply) -> frozenset[str]:
    return frozenset(h for h in (_host(c.url)
                                 for c in reply.citations) if h)


@dataclass(slots=True)
class _Turn:
    tenant: TenantConfig
    message: InboundMessage
    held: str = ""
    streamed: bool = False
    rules: list[str] = field(default_factory=list)
    moderated: bool = False
    """Held whole until the provider's moderation has seen it."""
    seen: dict[str, str] = field(default_factory=dict)
    """Each streamed sentence and what was shown for it."""


class OutputFilter:
    """The stage; ``resolve`` finds a turn's tenant from its message (the registry's
    ``for_message``, the same decision the engine made)."""

    def __init__(self, resolve: Callable[[InboundMessage], TenantConfig],
                 audit: AuditLog | None = None, moderator: Moderator | None = None) -> None:
        self._resolve = resolve
        self._audit = audit
        self._moderator = moderator
        self._turns: dict[str, _Turn] = {}

    def check(self, tenant: TenantConfig, sentence: str, rules: list[str],
              hosts: frozenset[str] = frozenset()) -> str:
        """One sentence as the channel may show it; the rules it broke go in ``rules``.
        ``hosts``: more hosts links may go to (the reply's cited sources)."""
        if _leaks(sentence, canary_for(tenant.id), tenant.persona.system_prompt):
            rules.append("prompt_leak")
            tail = sentence[len(sentence.rstrip()):]
            return LEAK_NOTICE + (tail or " ")
        if blocked(normalise(sentence), tenant.safety) is not None:
            rules.append("blocked_out")
            return "[Removed.]" + (sentence[len(sentence.rstrip()):] or " ")
        allowed = frozenset(d.lower() for d in tenant.safety.allowed_link_domains) | hosts

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
            if _host_allowed(url, allowed) or not _query(url):
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
                    seen: dict[str, str] | None = None,
                    hosts: frozenset[str] = frozenset()) -> str:
        """``seen``: sentences already checked while streaming (the final reply repeats
        them), so each is checked once."""
        done, rest = sentences(text)
        known = seen or {}
        return "".join(known[s] if s in known else self.check(tenant, s, rules, hosts)
                       for s in [*done, rest] if s)

    def _checked(self, turn: _Turn, sentence: str) -> str:
        shown = self.check(turn.tenant, sentence, turn.rules)
        turn.seen[sentence] = shown
        return shown

    async def __call__(self, event: TurnEvent, next_stage: Next) -> Receipt:
        match event:
            case TurnStarted(turn_id=turn_id, message=message):
                tenant = self._resolve(message)
                self._turns[turn_id] = _Turn(tenant, message, moderated=self._moderator
                                             is not None and tenant.safety.moderation)
                return await next_stage(event)
            case TextDelta(turn_id=turn_id, text=text) if turn_id in self._turns:
                turn = self._turns[turn_id]
                turn.streamed = True
                if turn.moderated:
                    return Receipt()  # shown whole, once moderated
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
                if not self._turns[turn_id].moderated:
                    await self._flush(turn_id, next_stage)
                return await next_stage(event)
            case FinalReply(turn_id=turn_id, reply=reply) | TurnFailed(
                    turn_id=turn_id, reply=reply) if turn_id in self._turns:
                turn = self._turns.pop(turn_id)
                if not turn.streamed:  # a command's reply, not a model's text
                    return await next_stage(event)
                if turn.held:
                    await self._flush(turn_id, next_stage, turn)
                hosts = cited_hosts(reply)
                if hosts and {"link", "image_link"} & set(turn.rules):
                    # a link streaming removed may go to a source the reply cites: check
                    # the reply again, knowing its sources
                    turn.rules, turn.seen = [], {}
                text = self.filter_text(turn.tenant, reply.text, turn.rules, turn.seen, hosts)
                if turn.moderated:
                    text = await self._moderated(turn, text)
                if text == reply.text:
                    receipt = await next_stage(event)
                else:
                    filtered = replace(reply, text=text)
                    receipt = replace(await next_stage(
                        FinalReply(turn_id, filtered) if isinstance(event, FinalReply)
                        else TurnFailed(turn_id, filtered)), delivered=filtered)
                await self._events(turn_id, turn)  # after the user has the reply
                return receipt
        return await next_stage(event)

    async def _moderated(self, turn: _Turn, text: str) -> str:
        assert self._moderator is not None
        try:
            categories = await self._moderator.flagged(text)
        except ModerationUnavailable as exc:
            metrics.SAFETY_EVENTS.labels(turn.tenant.id, turn.message.channel,
                                         "moderation_unavailable", "allowed").inc()
            log.warning("moderation unavailable, the answer goes out filtered: %s", exc)
            return text
        if not categories:
            return text
        turn.rules.extend(f"moderation_{c}_out" for c in categories)
        return turn.tenant.safety.blocked_reply

    async def _events(self, turn_id: str, turn: _Turn) -> None:
        message = turn.message
        for rule in sorted(set(turn.rules)):
            metrics.SAFETY_EVENTS.labels(turn.tenant.id, message.channel, rule, "filtered").inc()
            if self._audit is None:
                continue
            try:
                await self._audit.record(AuditRecord(
                    tenant=turn.tenant.id, channel=message.channel,
                    user_id=message.author.id, command=f"safety:{rule}", args_sha256="",
                    outcome="refused", at=datetime.now(UTC), request_id=turn_id,
                    via="safety_output"))
            except Exception as exc:  # the reply still goes out, filtered
                log.warning("output safety event not audited (%s)", type(exc).__name__)

    async def _flush(self, turn_id: str, next_stage: Next, turn: _Turn | None = None) -> None:
        turn = turn or self._turns[turn_id]
        if turn.held:
            held, turn.held = turn.held, ""
            await next_stage(TextDelta(turn_id, self._checked(turn, held)))


def _leaks(sentence: str, canary: str, prompt: str) -> bool:
    """Whether a sentence gives away the instructions: the canary, a run of
    ``VERBATIM_CHARS`` of the system prompt or a whole sentence of it at least
    ``WHOLE_CHARS`` long — compared on skeletons (invisible characters, look-alike
    letters, case and spacing do not hide it) — or any of that base64-encoded."""
    for text in (sentence, *decoded_runs(sentence)):
        flat = skeleton(text)
        if canary.casefold() in flat or (prompt and _verbatim(flat, prompt)):
            return True
    return False


@functools.lru_cache(maxsize=256)
def _prompt_skeleton(prompt: str) -> tuple[str, frozenset[str]]:
    """The system prompt's skeleton and every ``VERBATIM_CHARS``-long run of it, built
    once per prompt: a sentence is then checked in one pass, not against the prompt at
    every offset."""
    flat = skeleton(prompt)
    return flat, frozenset(flat[i:i + VERBATIM_CHARS]
                           for i in range(len(flat) - VERBATIM_CHARS + 1))


def _verbatim(flat: str, prompt: str) -> bool:
    """Whether the skeleton ``flat`` repeats the prompt: a whole sentence of it (of
    ``WHOLE_CHARS`` or more, end punctuation aside) or ``VERBATIM_CHARS`` in a row."""
    whole, runs = _prompt_skeleton(prompt)
    core = flat.strip().rstrip(".!?:;,").strip()
    if len(core) >= WHOLE_CHARS and core in whole:
        return True
    if len(flat) < VERBATIM_CHARS:
        return False
    return any(flat[i:i + VERBATIM_CHARS] in runs
               for i in range(len(flat) - VERBATIM_CHARS + 1))
