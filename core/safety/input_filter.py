"""The input filter: the pipeline step after the tenant is known and before anything is
journaled, stored or sent to a model.

Per tenant (``[safety]``): blocked terms and patterns get the tenant's reply, and so does
a message the provider's moderation flags (when the tenant turns it on); personal
data and secrets (``detectors.py``) are redacted (the default), refused, or allowed.
Zero-width characters are removed and the text NFKC-normalised first, so
``ja\u200bne@exa\u200bmple.com`` or full-width digits do not slip past, and blocked
terms are compared on the text's skeleton (look-alike Cyrillic and Greek letters
folded, ``text.py``). A message longer than the tenant's ``max_message_chars`` is
refused before anything else reads it. Every match is
counted (``switchboard_safety_events_total``) and audited with its rule and action, never
its content; logs name the kinds found, never the values.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import re
from collections import Counter
from datetime import UTC, datetime

from core.commands.audit import AuditRecord
from core.engine.context import Stop, Turn
from core.engine.deps import EngineDeps
from core.llm.moderation import ModerationUnavailable
from core.replies import Reply
from core.safety.detectors import LABELS, find, redact
from core.safety.text import normalise, skeleton
from core.tenants.models import Safety
from observability import metrics

log = logging.getLogger("switchboard.safety")

def blocked(text: str, safety: Safety) -> str | None:
    """The rule a message breaks (``term`` or ``pattern``), or None."""
    terms, patterns = _compiled(tuple(safety.blocked_terms), tuple(safety.blocked_patterns))
    if terms is not None and terms.search(skeleton(text)):
        return "term"
    if any(p.search(text) for p in patterns):
        return "pattern"
    return None


@functools.lru_cache(maxsize=1024)
def _compiled(terms: tuple[str, ...], patterns: tuple[str, ...]
              ) -> tuple[re.Pattern[str] | None, tuple[re.Pattern[str], ...]]:
    """A tenant's terms as one expression over skeletons (whole words), and its
    patterns, compiled once per list rather than for every message and sentence."""
    words = sorted({skeleton(t) for t in terms if skeleton(t)}, key=len, reverse=True)
    joined = re.compile(r"(?<!\w)(?:" + "|".join(map(re.escape, words)) + r")(?!\w)") \
        if words else None
    try:  # one pass for all patterns when they combine (no back-references, no flags)
        if any(re.search(r"\\[1-9]|\(\?P=", p) for p in patterns):
            raise re.error("back-references would point elsewhere once combined")
        combined: tuple[re.Pattern[str], ...] = (re.compile(
            "|".join(f"(?:{p})" for p in patterns), re.IGNORECASE),) if patterns else ()
    except re.error:
        combined = tuple(re.compile(p, re.IGNORECASE) for p in patterns)
    return joined, combined


async def _event(turn: Turn, deps: EngineDeps, rule: str, action: str) -> None:
    tenant = turn.require_tenant()
    channel = turn.message.binding.channel
    metrics.SAFETY_EVENTS.labels(tenant.id, channel, rule, action).inc()
    try:
        await deps.audit.record(AuditRecord(
            tenant=tenant.id, channel=channel, user_id=turn.message.author.id,
            command=f"safety:{rule}", args_sha256="", outcome="refused"
            if action in ("refused", "blocked") else "ok", at=datetime.now(UTC),
            request_id=turn.turn_id, via="safety"))
    except Exception as exc:  # the audit store down must not let the message through
        log.warning("safety event not audited (%s)", type(exc).__name__)


async def screen_input(turn: Turn, deps: EngineDeps) -> Stop | None:
    tenant = turn.require_tenant()
    safety = tenant.safety
    message = turn.message
    if len(message.text) > safety.max_message_chars:
        await _event(turn, deps, "too_long", "refused")
        return Stop("filtered", Reply(
            f"Your message is too long for me ({len(message.text):,} characters; the limit "
            f"here is {safety.max_message_chars:,}). Please shorten it or split it up.",
            kind="refusal", ephemeral=True))
    text = normalise(message.text)
    rule = blocked(text, safety)
    if rule is not None:
        await _event(turn, deps, f"blocked_{rule}", "blocked")
        log.info("a message matched a blocked %s", rule)
        return Stop("filtered", Reply(safety.blocked_reply, kind="refusal"))
    if safety.moderation and deps.moderator is not None:
        try:
            categories = await deps.moderator.flagged(text)
        except ModerationUnavailable as exc:
            categories = []
            metrics.SAFETY_EVENTS.labels(tenant.id, message.channel, "moderation_unavailable",
                                         "allowed").inc()
            log.warning("moderation unavailable, the message goes on: %s", exc)
        if categories:
            for category in categories:
                await _event(turn, deps, f"moderation_{category}", "blocked")
            log.info("a message was flagged by moderation: %s", categories)
            return Stop("filtered", Reply(safety.blocked_reply, kind="refusal"))
    findings = find(text) if safety.pii_action != "allow" else []
    if findings:
        kinds = Counter(f.kind for f in findings)
        if safety.pii_action == "refuse":
            for kind in kinds:
                await _event(turn, deps, f"pii_{kind}", "refused")
            what = ", ".join(LABELS[k] for k in sorted(kinds))
            log.info("a message with personal data was refused: %s", dict(kinds))
            return Stop("filtered", Reply(
                f"Your message seems to contain personal data or a secret ({what}), which "
                "this workspace does not accept. Please remove it and ask again.",
                kind="refusal", ephemeral=True))
        for kind in kinds:
            await _event(turn, deps, f"pii_{kind}", "redacted")
        log.info("personal data redacted from a message: %s", dict(kinds))
        text = redact(text, findings)
    if text != message.text:
        turn.message = dataclasses.replace(message, text=text)
    return None
