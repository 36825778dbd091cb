"""Messages lost when Redis or MongoDB fails under load, and after a process crash.

Runs the suite's chaos tests (``tests/test_outages.py``, ``tests/test_crash_recovery.py``)
with 20-second outages instead of the suite's 5, and beside them, in the same run, the
Redis scenario with the fallback switched off: every Redis error fails the turn, which
is what the engine did before it degraded instead (it then also lost the messages; now
a failed turn's question is stored with its apology). Each scenario sends 20 chat
messages a second through the engine over real servers that are killed (Redis, SIGKILL
then restart on the same port) or stopped (MongoDB, SIGSTOP then SIGCONT).

    python -m benchmarks.chaos [--outage 20]

Writes benchmarks/results/chaos.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.report import write_results

ROOT = Path(__file__).resolve().parent.parent


def run(outage_s: float, tests: list[str], no_fallback: bool = False
        ) -> tuple[list[dict[str, Any]], str]:
    with tempfile.NamedTemporaryFile("r", suffix=".jsonl") as report:
        env = {**os.environ, "SWITCHBOARD_CHAOS_OUTAGE_S": str(outage_s),
               "SWITCHBOARD_CHAOS_REPORT": report.name, "HF_HUB_OFFLINE": "1",
               **({"SWITCHBOARD_CHAOS_NO_FALLBACK": "1"} if no_fallback else {})}
        result = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
        lines = [json.loads(line) for line in Path(report.name).read_text().splitlines()]
    summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
    return lines, summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--outage", type=float, default=20.0)
    args = parser.parse_args()

    scenarios, summary = run(args.outage, ["tests/test_outages.py",
                                           "tests/test_crash_recovery.py"])
    baseline, _ = run(args.outage, ["tests/test_outages.py", "-k", "redis"],
                      no_fallback=True)
    print(f"chaos tests with {args.outage:.0f}s outages: {summary}")
    for row in [*scenarios, *baseline]:
        lost = row["sent"] - row["stored"]
        during = row["during_outage"]
        share = row["answered_during_outage"] / during if during else 0.0
        label = row["scenario"] + ("" if row["fallback"] else " (Redis fallback off)")
        print(f"  {label:<40} sent {row['sent']:>4}  answered {row['answered']:>4}  "
              f"apologised {row['apologised']:>4}  stored {row['stored']:>4}  lost {lost:>4}  "
              f"answered during outage {share:6.1%} of {during}")
    path = write_results("chaos", {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "outage_s": args.outage, "tests": summary,
        "scenarios": scenarios, "baseline_without_fallback": baseline})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
