"""What the operators' console shows, read through the engine's stores for one tenant.

Every query takes the tenant first and reads only that tenant's records: the console's
pages cannot show one tenant's data to another's admin, whatever they request. Periods
are read as bounded scans of recent messages (``MAX_MESSAGES``) and grouped here, which
the embedded MongoDB-wire server supports and which is plenty for a console.

Knowledge gaps are the questions the assistant could not answer well: answered with no
source, with low confidence, or rated "not helpful". They are grouped by meaning with
the tenant's own embedder (questions whose vectors are close end up together), so an
admin sees "12 people asked about parental leave" instead of twelve rows.
"""

from __future__ import annotations

import asyncio
import csv
import io
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np

from core.commands.audit import AuditRecord
from core.engine.deps import EngineDeps
from core.knowledge.catalog import IngestRun
from core.sessions.models import ConversationKey, StoredMessage, ThreadSummary
from core.tenants.loader import load_tenant_file
from core.tenants.models import TenantConfig
from core.usage import MonthlyUsage

MAX_MESSAGES = 20_000
LOW_CONFIDENCE = 0.35
SAME_GAP = 0.4
"""Cosine similarity to a group's centre above which a question joins it. Measured with
the default embedder (MiniLM) on short questions: rewordings of one question score 0.4
to 0.8 against each other, questions on different topics below 0.3."""


@dataclass(slots=True)
class Day:
    day: date
    turns: int = 0
    users: int = 0
    cited: int = 0
    no_source: int = 0
    failed: int = 0
    tokens: int = 0
    cost_usd: float = 0.0
    channels: Counter[str] = field(default_factory=Counter)


@dataclass(slots=True)
class Overview:
    tenant: TenantConfig
    days: list[Day]
    month: MonthlyUsage | None
    channels: Counter[str]

    @property
    def turns(self) -> int:
        return sum(d.turns for d in self.days)

    @property
    def users(self) -> int:
        return max((d.users for d in self.days), default=0)

    def total(self, name: str) -> float:
        return float(sum(getattr(d, name) for d in self.days))


@dataclass(slots=True)
class Gap:
    """One group of questions asked in other words."""

    label: str
    questions: list[str]
    reasons: Counter[str]
    cited: Counter[str]
    last_at: datetime

    @property
    def count(self) -> int:
        return len(self.questions)


@dataclass(slots=True)
class Conversation:
    summary: ThreadSummary
    messages: list[StoredMessage]
    safety: dict[str, list[AuditRecord]]
    """Safety events of each turn (by turn id): rule and action, never content."""


class Console:
    """The console's queries; built by the engine over its stores."""

    def __init__(self, deps: EngineDeps) -> None:
        self._deps = deps

    async def overview(self, tenant: TenantConfig, days: int = 14) -> Overview:
        today = datetime.now(UTC).date()
        start = datetime.combine(today - timedelta(days=days - 1), datetime.min.time(), UTC)
        messages = await self._deps.sessions.since(tenant.id, start, MAX_MESSAGES)
        by_day = {today - timedelta(days=n): Day(today - timedelta(days=n))
                  for n in range(days)}
        users: dict[date, set[str]] = defaultdict(set)
        channels: Counter[str] = Counter()
        for m in messages:
            day = by_day.get(m.at.astimezone(UTC).date())
            if day is None:
                continue
            if m.role == "user":
                users[day.day].add(m.user_id)
                continue
            day.turns += 1
            day.channels[m.key.channel] += 1
            channels[m.key.channel] += 1
            day.tokens += m.usage.prompt_tokens + m.usage.completion_tokens
            day.cost_usd += m.usage.cost_usd
            if m.kind == "apology":
                day.failed += 1
            elif _grounding(m) == "no_source":
                day.no_source += 1
            elif _grounding(m) == "cited":
                day.cited += 1
        for day in by_day.values():
            day.users = len(users[day.day])
        try:
            month = await self._deps.usage.month(tenant.id, datetime.now(UTC))
        except Exception:  # the console still shows the conversations
            month = None
        return Overview(tenant, sorted(by_day.values(), key=lambda d: d.day), month, channels)

    async def gaps(self, tenant: TenantConfig, days: int = 30) -> list[Gap]:
        start = datetime.now(UTC) - timedelta(days=days)
        messages = await self._deps.sessions.since(tenant.id, start, MAX_MESSAGES)
        questions = {m.turn_id: m for m in messages if m.role == "user" and m.turn_id}
        reasons: dict[str, set[str]] = defaultdict(set)
        answers: dict[str, StoredMessage] = {}
        for m in messages:
            if m.role != "assistant" or m.kind not in ("answer", "") or m.turn_id not in questions:
                continue
            answers[m.turn_id] = m
            if _grounding(m) == "no_source":
                reasons[m.turn_id].add("no source")
            elif m.confidence is not None and m.confidence < LOW_CONFIDENCE:
                reasons[m.turn_id].add("low confidence")
        if self._deps.feedback is not None:
            for rating in await self._deps.feedback.recent(tenant.id, 2000):
                turn_id = str(rating.get("turn_id", ""))
                if rating.get("rating") == "down" and turn_id in questions:
                    reasons[turn_id].add("not helpful")
        asked = [(turn_id, questions[turn_id]) for turn_id in reasons]
        if not asked:
            return []
        vectors = await self._vectors(tenant, [q.text for _, q in asked])
        groups: list[tuple[np.ndarray[Any, Any], list[int]]] = []
        for index in range(len(asked)):
            vector = vectors[index]
            best = max(range(len(groups)), default=None,
                       key=lambda g: float(groups[g][0] @ vector))
            if best is not None and float(groups[best][0] @ vector) >= SAME_GAP:
                members = groups[best][1]
                members.append(index)
                mean = vectors[members].mean(axis=0)
                groups[best] = (mean / max(float(np.linalg.norm(mean)), 1e-9), members)
            else:
                groups.append((vector, [index]))
        out = []
        for _, members in groups:
            turns = [asked[i] for i in members]
            texts = [q.text for _, q in turns]
            why: Counter[str] = Counter(r for turn_id, _ in turns for r in reasons[turn_id])
            cited: Counter[str] = Counter(
                c.get("title") or c.get("source", "") for turn_id, _ in turns
                for c in (answers[turn_id].citations if turn_id in answers else ()))
            out.append(Gap(min(texts, key=len), texts, why, cited,
                           max(q.at for _, q in turns)))
        return sorted(out, key=lambda g: (-g.count, -g.last_at.timestamp()))

    async def _vectors(self, tenant: TenantConfig, texts: list[str]) -> np.ndarray[Any, Any]:
        knowledge = self._deps.knowledge
        if knowledge is None:  # no embedder here: each question is its own group
            return np.eye(len(texts), dtype=np.float32)
        vectors = np.asarray(await knowledge.ingestor.embedder_for(tenant).embed_documents(
            texts), dtype=np.float32)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        unit: np.ndarray[Any, Any] = vectors / np.clip(norms, 1e-9, None)
        return unit

    async def feedback(self, tenant: TenantConfig, limit: int = 200) -> list[dict[str, Any]]:
        if self._deps.feedback is None:
            return []
        ratings = await self._deps.feedback.recent(tenant.id, limit)
        turns = await self._deps.sessions.of_turns(
            tenant.id, [str(r.get("turn_id", "")) for r in ratings])
        by_turn: dict[str, dict[str, StoredMessage]] = defaultdict(dict)
        for m in turns:
            by_turn[m.turn_id][m.role] = m
        return [{**r, "question": by_turn[str(r.get("turn_id"))].get("user"),
                 "answer": by_turn[str(r.get("turn_id"))].get("assistant")} for r in ratings]

    async def conversations(self, tenant: TenantConfig, limit: int = 50
                            ) -> list[ThreadSummary]:
        return await self._deps.sessions.threads(tenant.id, limit)

    async def conversation(self, tenant: TenantConfig, channel: str, thread: str
                           ) -> Conversation | None:
        key = ConversationKey(tenant.id, channel, thread)
        messages = await self._deps.sessions.transcript(key, 200)
        if not messages:
            return None
        turn_ids = {m.turn_id for m in messages}
        safety: dict[str, list[AuditRecord]] = defaultdict(list)
        for record in await self._deps.audit.recent(tenant.id, 1000):
            if record.via.startswith("safety") and record.request_id in turn_ids:
                safety[record.request_id].append(record)
        summary = ThreadSummary(channel, thread, messages[-1].at, len(messages))
        return Conversation(summary, messages, dict(safety))

    async def ingest_runs(self, tenant: TenantConfig) -> list[IngestRun]:
        """How the last ingestion of each of the tenant's knowledge bases ended."""
        knowledge = self._deps.knowledge
        if knowledge is None:
            return []
        kbs = sorted({"default", *(s.kb for s in tenant.knowledge.sources)})
        runs = [await knowledge.catalog.last_run(tenant.id, kb) for kb in kbs]
        return [r for r in runs if r is not None]

    async def audit(self, tenant: TenantConfig, limit: int = 200) -> list[AuditRecord]:
        return await self._deps.audit.recent(tenant.id, limit)

    async def settings(self, tenant: TenantConfig) -> tuple[str, list[str]]:
        """The tenant's file as written (files hold no secrets, only the names of the
        variables that do) and its problems as ``switchboard tenants check`` finds them."""
        path = self._deps.tenants.directory / f"{tenant.id}.toml"

        def read() -> tuple[str, list[str]]:
            try:
                text = path.read_text()
            except OSError as exc:
                return "", [f"the file cannot be read: {exc.strerror}"]
            loaded = load_tenant_file(path)
            problems = [f"{p.field}: {p.reason}" for p in loaded] \
                if isinstance(loaded, list) else []
            return text, problems
        return await asyncio.to_thread(read)


def gaps_csv(gaps: list[Gap]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["group", "questions", "reasons", "examples", "cited sources", "last asked"])
    for gap in gaps:
        writer.writerow([_cell(gap.label), gap.count,
                         "; ".join(f"{r} ({n})" for r, n in gap.reasons.most_common()),
                         " | ".join(_cell(q) for q in gap.questions[:5]),
                         "; ".join(_cell(s) for s, _ in gap.cited.most_common(5)),
                         gap.last_at.isoformat(timespec="minutes")])
    return out.getvalue()


def _cell(text: str) -> str:
    """A cell a spreadsheet will not run as a formula (CSV injection)."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _grounding(m: StoredMessage) -> str:
    """As recorded; for answers stored before it was, no citations means no source."""
    if m.grounding:
        return m.grounding
    return "cited" if m.citations else "no_source" if m.kind == "answer" else ""
