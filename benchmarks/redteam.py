"""The red-team suite against a model: every case of ``tests/redteam/*.yaml`` through the
production pipeline, with the table of what held.

With ``OPENAI_API_KEY`` set, the model is the real one (``OPENAI_BASE_URL`` and
``--model`` pick which), so the table shows how the defences and the model's own
manners combine; outcomes that presuppose a model that obeys (a confirmation asked for
a tool call it never made) are shown as n/a. Without a key it runs against the
stand-in scripted to obey every attack, as the test suite does.

    python -m benchmarks.redteam [--model gpt-4o-mini] [--only ID-PREFIX]

Writes benchmarks/results/redteam.json.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.report import write_results
from bots.embedded_mongo import EmbeddedMongo
from core.knowledge.answer_cache import AnswerCache
from core.knowledge.embedders import EmbedderRegistry
from core.knowledge.index import QdrantIndex
from core.knowledge.service import KnowledgeService
from core.llm.openai_chat import OpenAIAnswerer
from core.state.memory import MemoryState
from core.stores.mongo_client import MongoConnection
from core.stores.mongo_documents import MongoCatalog
from tests.fakes.openai_server import FakeOpenAI, start_fake_openai
from tests.redteam.harness import OBEY_ONLY, Outcome, Stores, load_cases, obeying_script, run_case


async def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default=os.environ.get("OPENAI_MODEL", "gpt-4o-mini"))
    parser.add_argument("--only", default="", help="run the cases whose id starts so")
    args = parser.parse_args()
    real = bool(os.environ.get("OPENAI_API_KEY"))
    cases = [c for c in load_cases() if c.id.startswith(args.only)]
    workdir = Path(tempfile.mkdtemp(prefix="sb-redteam-"))
    embedded = EmbeddedMongo(workdir / "mongo")
    mongo = MongoConnection(await embedded.start(), database="redteam")
    catalog = MongoCatalog(mongo.db)
    await catalog.ensure_indexes()
    knowledge = KnowledgeService(QdrantIndex(namespace="redteam"), catalog, EmbedderRegistry(),
                                 AnswerCache(MemoryState()), workdir)
    fake: FakeOpenAI | None = None
    runner = None
    if real:
        answerer = OpenAIAnswerer(os.environ["OPENAI_API_KEY"],
                                  os.environ.get("OPENAI_BASE_URL") or None)
    else:
        fake, runner = await start_fake_openai(FakeOpenAI())
        answerer = OpenAIAnswerer("sk-stand-in", fake.url)
    outcomes: list[Outcome] = []
    started = time.perf_counter()
    try:
        stores = Stores(mongo, MemoryState(), knowledge, answerer)
        for number, case in enumerate(cases, start=1):
            requests = None
            if fake is not None:
                fake.script = obeying_script(case, case.text if case.planted == "message"
                                             else case.ask)
                requests = lambda f=fake: [r for r in f.requests if "messages" in r]  # noqa: E731
            outcome = await run_case(stores, case, number, requests,
                                     model=args.model if real else "")
            if real:  # a model that did not take the bait makes these moot, not failed
                moot = [f for f in outcome.failures if f.split(":")[0] in OBEY_ONLY]
                outcome.failures = [f for f in outcome.failures if f not in moot]
                outcome.skipped = moot
            outcomes.append(outcome)
            mark = "held" if outcome.passed else "BROKEN"
            print(f"{mark:>6}  {case.category:<18} {case.planted:<13} {case.channel:<8} "
                  f"{case.id}" + (f"  — {'; '.join(outcome.failures)}" if outcome.failures
                                  else "") + (f"  (n/a: {len(outcome.skipped)})"
                                              if outcome.skipped else ""), flush=True)
    finally:
        await answerer.close()
        await knowledge.close()
        await mongo.close()
        await embedded.stop()
        if runner is not None:
            await runner.cleanup()
        shutil.rmtree(workdir, ignore_errors=True)
    held = sum(o.passed for o in outcomes)
    by_category: dict[str, Any] = {}
    for category, count in Counter(o.case.category for o in outcomes).items():
        ok = sum(o.passed for o in outcomes if o.case.category == category)
        by_category[category] = {"cases": count, "held": ok}
    print(f"\n{held} of {len(outcomes)} cases held against "
          f"{args.model if real else 'the obeying stand-in'} "
          f"in {time.perf_counter() - started:.1f} s")
    for category, row in sorted(by_category.items()):
        print(f"  {category:<20} {row['held']:>3} / {row['cases']}")
    path = write_results("redteam", {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "model": args.model if real else "obeying stand-in", "cases": len(outcomes),
        "held": held, "by_category": by_category,
        "broken": {o.case.id: o.failures for o in outcomes if not o.passed},
        "not_applicable": {o.case.id: o.skipped for o in outcomes if o.skipped}})
    print(f"-> {path}")
    return 0 if held == len(outcomes) else 1


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
