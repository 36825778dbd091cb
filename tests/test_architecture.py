"""Adapters talk to the engine through its interface, never its internals.

Reads every module under ``adapters/`` (their tests too) and fails on an attribute
access named ``deps`` (the engine's dependencies: a service locator) or an import of an
engine module other than the package itself (``core.engine``: ``Engine``, ``TurnResult``).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ALLOWED_ENGINE_IMPORTS = {"core.engine"}


def offences(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    label = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path.name
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr == "deps":
            found.append(f"{label}:{node.lineno} reads .deps")
        modules = ([node.module or ""] if isinstance(node, ast.ImportFrom)
                   else [a.name for a in node.names] if isinstance(node, ast.Import) else [])
        for module in modules:
            if module.startswith("core.engine") and module not in ALLOWED_ENGINE_IMPORTS:
                found.append(f"{label}:{node.lineno} imports {module}")
    return found


def test_no_adapter_reaches_into_the_engine() -> None:
    modules = sorted((ROOT / "adapters").rglob("*.py"))
    assert len(modules) > 20
    assert [o for m in modules for o in offences(m)] == []


def test_the_check_catches_a_service_locator(tmp_path: Path) -> None:
    sample = tmp_path / "probe.py"
    sample.write_text("from core.engine.deps import EngineDeps\n"
                      "def f(engine):\n    return engine.deps.sessions\n")
    assert len(offences(sample)) == 2
