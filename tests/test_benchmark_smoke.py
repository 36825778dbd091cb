"""A tiny run of the open-loop load benchmark, so it keeps working: two tenants, five
questions a second for two seconds, over the widget and Slack, every one answered."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_load_benchmark_runs_and_answers_everything() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.load", "--rates", "5", "--duration", "2",
         "--tenants", "2", "--models", "instant", "--users", "", "--no-write"],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    assert "errors   0" in done.stdout and "max sustainable rate: 5 turns/s" in done.stdout
