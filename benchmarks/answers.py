"""The golden set: questions about Switchboard's own docs/, asked of the demo tenant on
the embedded defaults (no language model: the offline answerer), and what a reader
would check in each answer.

For every question (`benchmarks/golden/answers.toml`): the share of expected facts the
answer states, whether it cites the document it should, whether it is clean (no code
or table fragment, balanced backticks, no empty quote), whether it has 2-5 sentences,
and whether its follow-up suggestions share a word with the question.

    python -m benchmarks.answers [--compare REF]

``--compare REF`` also runs the same set on commit REF (a temporary git worktree) in
the same session and prints both. Writes benchmarks/results/answers.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = Path(__file__).resolve().parent / "golden" / "answers.toml"
_WORD = re.compile(r"[a-z0-9]{4,}")
_STOP = frozenset({"what", "which", "does", "when", "with", "from", "that", "this", "have",
                   "there", "their", "about", "tell", "more", "much", "many", "into", "used",
                   "done", "made"})
_SENTENCE_END = re.compile(r"[.!?](?:\s*\[\d+\])*(?=\s|$)")


@dataclass(frozen=True, slots=True)
class Golden:
    q: str
    facts: tuple[str, ...]
    source: str
    demo: bool


def golden() -> list[Golden]:
    data = tomllib.loads(GOLDEN.read_text())
    return [Golden(g["q"], tuple(g["facts"]), g.get("source", ""), bool(g.get("demo")))
            for g in data["question"]]


def terms(text: str) -> set[str]:
    return {w.rstrip("s") for w in _WORD.findall(text.lower())} - _STOP


def body(text: str) -> str:
    """The answer without its footer lines in italics (the offline answerer's note)."""
    return "\n".join(line for line in text.splitlines()
                     if not (line[:1] in "_*" and line[-1:] in "_*"))


def clean(text: str) -> bool:
    if "```" in text or text.count("`") % 2:
        return False
    if any(line.count("|") >= 2 for line in text.splitlines()):
        return False
    return not re.search(r"^>\s*(\[\d+\]\s*)*$", text, re.MULTILINE)


def sentences(text: str) -> int:
    return len(_SENTENCE_END.findall(body(text)))


def judge(item: Golden, text: str, sources: list[str], follow_ups: list[str]) -> dict[str, Any]:
    lowered = text.lower()
    found = [any(alt.lower() in lowered for alt in fact.split("|")) for fact in item.facts]
    wanted = item.source.split("|") if item.source else []
    asked = terms(item.q)
    return {"question": item.q, "demo": item.demo,
            "facts": round(sum(found) / len(found), 2),
            "cites_source": not wanted or any(s in wanted for s in sources),
            "clean": clean(text), "sentences": sentences(text),
            "follow_ups": follow_ups,
            "follow_ups_on_topic": all(terms(f) & asked for f in follow_ups),
            "answer": text, "sources": sources}


async def ask_all() -> list[dict[str, Any]]:
    """Boot the embedded stack on a throw-away data directory, ingest the demo tenant's
    documents, and ask every golden question in a thread of its own, each by another
    user (the demo tenant allows 20 questions a minute per user)."""
    from adapters.memory import MemoryChannel
    from bots.bootstrap import open_services
    from bots.settings import Settings

    data = Path(tempfile.mkdtemp(prefix="sb-answers-"))
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    env.update(SWITCHBOARD_DATA_DIR=str(data), SWITCHBOARD_TENANTS_DIR=str(ROOT / "tenants"),
               HF_HUB_OFFLINE="1")
    settings = Settings.from_env(env)
    rows = []
    try:
        async with open_services(settings, initial_ingest="wait") as services:
            channel = MemoryChannel(services.engine, "demo")
            for n, item in enumerate(golden()):
                turn = await channel.send(item.q, thread=f"golden-{n}",
                                          user=f"reader-{n}")
                reply = turn.reply
                text = reply.text if reply else ""
                sources = [c.source for c in reply.citations] if reply else []
                rows.append(judge(item, text, sources, list(reply.follow_ups) if reply else []))
    finally:
        shutil.rmtree(data, ignore_errors=True)
    return rows


def summary(rows: list[dict[str, Any]]) -> dict[str, float]:
    def share(key: str, subset: list[dict[str, Any]]) -> float:
        return round(100 * sum(bool(r[key]) for r in subset) / max(1, len(subset)), 1)
    demo = [r for r in rows if r["demo"]]
    return {"questions": len(rows),
            "facts_pct": round(100 * sum(r["facts"] for r in rows) / max(1, len(rows)), 1),
            "cites_source_pct": share("cites_source", rows),
            "clean_pct": share("clean", rows),
            "two_to_five_sentences_pct": round(100 * sum(2 <= r["sentences"] <= 5
                                                         for r in rows) / max(1, len(rows)), 1),
            "follow_ups_on_topic_pct": share("follow_ups_on_topic", rows),
            "demo_clean_pct": share("clean", demo),
            "demo_facts_pct": round(100 * sum(r["facts"] for r in demo) / max(1, len(demo)), 1)}


def run_at(ref: str) -> dict[str, Any]:
    """The same golden set on commit ``ref``: a git worktree with this script and the
    golden file copied in, run by this interpreter."""
    tree = Path(tempfile.mkdtemp(prefix="sb-answers-ref-"))
    subprocess.run(["git", "worktree", "add", "--detach", "-q", str(tree), ref], cwd=ROOT,
                   check=True)
    try:
        (tree / "benchmarks" / "golden").mkdir(parents=True, exist_ok=True)
        shutil.copy(GOLDEN, tree / "benchmarks" / "golden" / "answers.toml")
        shutil.copy(Path(__file__), tree / "benchmarks" / "answers.py")
        out = tree / "out.json"
        subprocess.run([sys.executable, "-m", "benchmarks.answers", "--json-only", str(out)],
                       cwd=tree, check=True)
        result: dict[str, Any] = json.loads(out.read_text())
        return result
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT,
                       check=False)


def table(label: str, figures: dict[str, float]) -> str:
    return (f"{label:>12} | facts {figures['facts_pct']:5.1f} % | cites the right document "
            f"{figures['cites_source_pct']:5.1f} % | clean {figures['clean_pct']:5.1f} % | "
            f"2-5 sentences {figures['two_to_five_sentences_pct']:5.1f} % | follow-ups on "
            f"topic {figures['follow_ups_on_topic_pct']:5.1f} % | demo questions clean "
            f"{figures['demo_clean_pct']:5.1f} %")


async def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--compare", default="", help="a commit to measure in the same run")
    parser.add_argument("--json-only", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    rows = await ask_all()
    now = {"summary": summary(rows), "answers": rows}
    if args.json_only:
        await asyncio.to_thread(Path(args.json_only).write_text, json.dumps(now))
        return 0
    results: dict[str, Any] = {"when": datetime.now(UTC).isoformat(timespec="seconds"),
                               "now": now}
    if args.compare:
        results["before"] = {"ref": args.compare, **run_at(args.compare)}
        print(table(args.compare[:12], results["before"]["summary"]))
    print(table("now", now["summary"]))
    for row in rows:
        mark = "ok " if row["clean"] and row["facts"] == 1 and row["cites_source"] else "-- "
        print(f"{mark}{row['question'][:60]:60} facts {row['facts']:.2f} "
              f"sentences {row['sentences']} cites {','.join(row['sources'])[:60]}")
    from benchmarks.report import write_results
    write_results("answers", results)
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
