"""``switchboard tenants check`` and ``switchboard tenants schema``."""

from __future__ import annotations

import json

from bots.settings import Settings
from core.tenants.loader import load_directory
from core.tenants.models import TenantConfig


def check(settings: Settings) -> int:
    result = load_directory(settings.tenants_dir)
    for problem in result.problems:
        print(problem)
    valid = ", ".join(sorted(result.tenants)) or "none"
    print(f"{len(result.tenants)} tenant file(s) valid ({valid}), "
          f"{len(result.problems)} problem(s).")
    return 1 if result.problems else 0


def schema() -> int:
    print(json.dumps(TenantConfig.model_json_schema(), indent=2))
    return 0
