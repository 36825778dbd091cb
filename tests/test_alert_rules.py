"""The alert rules for docs/slo.md: valid (``promtool check rules``), each alert firing on
the series that should fire it and quiet on healthy ones (``promtool test rules``), and
tied to the code — every metric they read is one the process exports, every runbook they
name exists."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

import observability.metrics  # noqa: F401  (registers the metrics)

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "ops" / "prometheus"


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.fail("promtool is missing: scripts/test installs Debian's prometheus package")
    return found


@pytest.mark.parametrize("command", [["check", "rules", "alerts.yml"],
                                     ["test", "rules", "alerts.test.yml"]])
def test_promtool_accepts_the_rules_and_their_unit_tests(command: list[str]) -> None:
    result = subprocess.run([promtool(), *command], cwd=RULES, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_the_rules_read_exported_metrics_and_name_existing_runbooks() -> None:
    text = (RULES / "alerts.yml").read_text()
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"),
                "gauge": ("",)}
    exported = {m.name + end for m in REGISTRY.collect() for end in suffixes.get(m.type, ())}
    used = set(re.findall(r"\b(switchboard_[a-z_]+)", text))
    assert used and used <= exported, used - exported
    runbooks = set(re.findall(r"runbook: (\S+)", text))
    assert runbooks and all((ROOT / r).is_file() for r in runbooks), runbooks


def test_the_dashboard_is_valid_json_over_exported_metrics() -> None:
    import json
    dashboard = json.loads((ROOT / "ops" / "grafana" / "switchboard.json").read_text())
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"),
                "gauge": ("",)}
    exported = {m.name + end for m in REGISTRY.collect() for end in suffixes.get(m.type, ())}
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    used = {name for e in exprs for name in re.findall(r"\b(switchboard_[a-z_]+)", e)}
    assert len(exprs) >= 12 and used <= exported, used - exported
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])
