"""What every benchmark shares: percentiles and writing benchmarks/results/<name>.json."""

from __future__ import annotations

import asyncio
import json
import sys
import urllib.request
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def write_results(name: str, results: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(results, indent=2) + "\n")
    return path


async def start_baseline(module: str, port: int, *args: str) -> asyncio.subprocess.Process:
    """A baseline server (``python -m MODULE PORT ARGS``) once its /healthz answers."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", module, str(port), *args, cwd=Path(__file__).parent.parent,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    for _ in range(100):
        try:
            await asyncio.to_thread(urllib.request.urlopen,
                                    f"http://127.0.0.1:{port}/healthz", None, 1)
            return process
        except OSError:
            await asyncio.sleep(0.1)
    process.terminate()
    raise RuntimeError(f"{module} did not start")
