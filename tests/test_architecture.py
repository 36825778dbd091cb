"""Adapters talk to the engine through its interface, never its internals.

Reads every module under ``adapters/`` (their tests too) and fails on an attribute
access named ``deps`` (the engine's dependencies: a service locator) or an import of an
engine module other than the package itself (``core.engine``: ``Engine``, ``TurnResult``).
Outside their tests, adapters import nothing else of the core either, but the turn
events, messages and replies, and the tenant models.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ALLOWED_ENGINE_IMPORTS = {"core.engine"}
ALLOWED_CORE = ("core.engine", "core.messages", "core.replies", "core.turns",
                "core.tenants.models")


def core_imports(path: Path) -> list[str]:
    """Imports of the core other than its channel-facing interface."""
    tree = ast.parse(path.read_text(), str(path))
    found = []
    for node in ast.walk(tree):
        modules = ([node.module or ""] if isinstance(node, ast.ImportFrom)
                   else [a.name for a in node.names] if isinstance(node, ast.Import) else [])
        for module in modules:
            if (module == "core" or module.startswith("core.")) and not any(
                    module == a or module.startswith(f"{a}.") for a in ALLOWED_CORE):
                found.append(f"{path.name}:{node.lineno} imports {module}")
    return found


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


def test_adapters_import_only_the_cores_channel_interface() -> None:
    modules = [m for m in sorted((ROOT / "adapters").rglob("*.py")) if "tests" not in m.parts]
    assert [o for m in modules for o in core_imports(m)] == []


def test_the_import_check_catches_a_core_internal(tmp_path: Path) -> None:
    sample = tmp_path / "probe.py"
    sample.write_text("from core.knowledge.service import KnowledgeService\n"
                      "import core.stores.mongo_sessions\n"
                      "from core.engine import Engine\nfrom core.turns.events import TextDelta\n")
    assert core_imports(sample) == ["probe.py:1 imports core.knowledge.service",
                                    "probe.py:2 imports core.stores.mongo_sessions"]
