"""The input filter: the pipeline step after the tenant is known and before anything is
journaled, stored or sent to a model.

Per tenant (``[safety]``): blocked terms and patterns get the tenant's reply; personal
data and secrets (``detectors.py``) are redacted (the default), refused, or allowed.
Zero-width characters are removed and the text NFKC-normalised first, so
``ja\u200bne@exa\u200bmple.com`` or full-width digits do not slip past. Every match is
counted (``switchboard_safety_events_total``) and audited with its rule and action, never
its content; logs name the kinds found, never the values.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import unicodedata
from collections import Counter
from datetime import UTC, datetime

from core.commands.audit import AuditRecord
from core.engine.context import Stop, Turn
from core.engine.deps import EngineDeps
from core.replies import Reply
from core.safety.detectors import LABELS, find, redact
from core.tenants.models import Safety
from observability import metrics

log = logging.getLogger("switchboard.safety")

_INVISIBLE = re.compile("[\u00ad\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff]")


def normalise(text: str) -> str:
    return unicodedata.normalize("NFKC", _INVISIBLE.sub("", text))


def blocked(text: str, safety: Safety) -> str | None:
    """The rule a message breaks (``term`` or ``pattern``), or None."""
    lowered = text.casefold()
    for term in safety.blocked_terms:
        if re.search(rf"(?<!\w){re.escape(term.casefold())}(?!\w)", lowered):
            return "term"
    for pattern in safety.blocked_patterns:
        if re.search(pattern, text, re.IGNORECASE):
            return "pattern"
    return None


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
    text = normalise(message.text)
    rule = blocked(text, safety)
    if rule is not None:
        await _event(turn, deps, f"blocked_{rule}", "blocked")
        log.info("a message matched a blocked %s", rule)
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
