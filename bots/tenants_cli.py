"""``switchboard tenants check`` and ``switchboard tenants schema``."""

from __future__ import annotations

import json
from pathlib import Path

from bots.settings import Settings
from core.commands.builtins import builtin_commands
from core.plain_errors import did_you_mean
from core.tenants.loader import TenantProblem, load_directory
from core.tenants.models import TenantConfig


def references(tenants: dict[str, TenantConfig], files: dict[str, Path], root: Path
               ) -> list[TenantProblem]:
    """What a tenant file names that does not exist: commands it enables and the
    registry lacks, and local knowledge sources that are not there."""
    known = set(builtin_commands().commands)
    problems: list[TenantProblem] = []
    for tenant_id, config in sorted(tenants.items()):
        file = str(files[tenant_id])
        if isinstance(config.commands.enabled, list):
            for name in config.commands.enabled:
                if name not in known:
                    problems.append(TenantProblem(
                        file, "commands.enabled",
                        f"{name!r} is not a command{did_you_mean(name, known)}"))
        for n, source in enumerate(config.knowledge.sources):
            if source.path.startswith(("http://", "https://")):
                continue
            path = Path(source.path) if Path(source.path).is_absolute() else root / source.path
            if not path.exists():
                problems.append(TenantProblem(
                    file, f"knowledge.sources.{n}.path",
                    f"{source.path!r}: no such file or folder (paths are relative to "
                    f"{root})"))
    return problems


def check(settings: Settings) -> int:
    result = load_directory(settings.tenants_dir)
    result.problems.extend(references(result.tenants, result.files,
                                      settings.tenants_dir.resolve().parent))
    for problem in result.problems:
        print(problem)
    valid = ", ".join(sorted(result.tenants)) or "none"
    print(f"{len(result.tenants)} tenant file(s) valid ({valid}), "
          f"{len(result.problems)} problem(s).")
    return 1 if result.problems else 0


def schema() -> int:
    print(json.dumps(TenantConfig.model_json_schema(), indent=2))
    return 0
