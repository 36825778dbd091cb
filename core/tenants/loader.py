"""Reading tenant files into validated configs, with problems reported precisely.

A problem names the file, the dotted field and the reason, so an operator can fix a
tenant file without reading a traceback. Loading never raises for a bad file: one broken
tenant must not stop the others from loading.
"""

from __future__ import annotations

import tomllib
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from core.messages import Binding
from core.plain_errors import plain
from core.tenants.models import TenantConfig


@dataclass(frozen=True, slots=True)
class TenantProblem:
    file: str
    field: str
    reason: str

    def __str__(self) -> str:
        return f"{self.file}: {self.field}: {self.reason}"


@dataclass(slots=True)
class LoadResult:
    tenants: dict[str, TenantConfig] = field(default_factory=dict)
    problems: list[TenantProblem] = field(default_factory=list)
    files: dict[str, Path] = field(default_factory=dict)


def load_tenant_file(path: Path) -> TenantConfig | list[TenantProblem]:
    """Parse and validate one file; return the config or every problem found in it."""
    name = str(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        return [TenantProblem(name, "-", f"cannot read file: {exc.strerror or exc}")]
    except UnicodeDecodeError:
        return [TenantProblem(name, "-", "file is not UTF-8 text")]
    except tomllib.TOMLDecodeError as exc:
        return [TenantProblem(name, "-", f"invalid TOML: {exc}")]
    try:
        config = TenantConfig.model_validate(raw)
    except ValidationError as exc:
        return [
            TenantProblem(name, ".".join(str(p) for p in err["loc"]) or "-",
                          plain(err, TenantConfig))
            for err in exc.errors(include_url=False)
        ]
    if config.id != path.stem:
        return [TenantProblem(name, "id", f"is {config.id!r} but must equal the file name "
                                          f"{path.stem!r}")]
    return config


def bindings_of(config: TenantConfig) -> list[Binding]:
    """Every platform identity that routes to this tenant."""
    found = [Binding("slack", team) for team in config.slack.team_ids]
    found += [Binding("discord", guild) for guild in config.discord.guild_ids]
    if config.widget.public_key:
        found.append(Binding("widget", config.widget.public_key))
    return found


def _binding_field(binding: Binding) -> str:
    return {"slack": "slack.team_ids", "discord": "discord.guild_ids"}.get(
        binding.channel, "widget.public_key"
    )


def binding_conflicts(tenants: dict[str, TenantConfig],
                      files: dict[str, Path]) -> tuple[set[Binding], list[TenantProblem]]:
    """Bindings claimed by more than one tenant: routed to none of them, reported for all."""
    owners: dict[Binding, list[str]] = defaultdict(list)
    for tenant_id, config in tenants.items():
        for binding in bindings_of(config):
            owners[binding].append(tenant_id)
    conflicted: set[Binding] = set()
    problems: list[TenantProblem] = []
    for binding, ids in owners.items():
        if len(ids) < 2:
            continue
        conflicted.add(binding)
        for tenant_id in ids:
            others = ", ".join(sorted(set(ids) - {tenant_id}))
            problems.append(TenantProblem(
                str(files[tenant_id]), _binding_field(binding),
                f"{binding.value!r} is also claimed by {others}; routed to neither"))
    return conflicted, problems


def load_directory(directory: Path) -> LoadResult:
    result = LoadResult()
    if not directory.is_dir():
        result.problems.append(TenantProblem(str(directory), "-", "tenants directory not found"))
        return result
    for path in sorted(directory.glob("*.toml")):
        loaded = load_tenant_file(path)
        if isinstance(loaded, TenantConfig):
            result.tenants[loaded.id] = loaded
            result.files[loaded.id] = path
        else:
            result.problems.extend(loaded)
    _, conflicts = binding_conflicts(result.tenants, result.files)
    result.problems.extend(conflicts)
    return result
