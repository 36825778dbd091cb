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
from typing import Any

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


def _read_toml(path: Path) -> dict[str, Any] | list[TenantProblem]:
    name = str(path)
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        return [TenantProblem(name, "-", f"cannot read file: {exc.strerror or exc}")]
    except UnicodeDecodeError:
        return [TenantProblem(name, "-", "file is not UTF-8 text")]
    except tomllib.TOMLDecodeError as exc:
        return [TenantProblem(name, "-", f"invalid TOML: {exc}")]


def merged(base: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    """``overlay`` over ``base``, table by table; any other value (lists too) replaces."""
    out = dict(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merged(out[key], value)
        else:
            out[key] = value
    return out


def load_tenant_file(path: Path, overlay: Path | None = None
                     ) -> TenantConfig | list[TenantProblem]:
    """Parse and validate one file — with ``overlay`` (an environment's file of the same
    name) merged over it, when that exists — and return the config or every problem."""
    name = str(path)
    raw = _read_toml(path)
    if isinstance(raw, list):
        return raw
    if overlay is not None and overlay.is_file():
        extra = _read_toml(overlay)
        if isinstance(extra, list):
            return extra
        if extra.get("id", path.stem) != path.stem:
            return [TenantProblem(str(overlay), "id", "an overlay cannot change the id")]
        raw = merged(raw, extra)
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


def load_directory(directory: Path, env: str = "") -> LoadResult:
    """Every ``*.toml`` of ``directory``; with ``env``, each merged with the environment's
    overlay ``directory/<env>/<id>.toml`` when there is one."""
    result = LoadResult()
    if not directory.is_dir():
        result.problems.append(TenantProblem(str(directory), "-", "tenants directory not found"))
        return result
    if env and not (directory / env).is_dir():
        result.problems.append(TenantProblem(str(directory / env), "-",
                                             f"no overlay folder for the environment {env!r}"))
        return result
    for path in sorted(directory.glob("*.toml")):
        loaded = load_tenant_file(path, directory / env / path.name if env else None)
        if isinstance(loaded, TenantConfig):
            result.tenants[loaded.id] = loaded
            result.files[loaded.id] = path
        else:
            result.problems.extend(loaded)
    _, conflicts = binding_conflicts(result.tenants, result.files)
    result.problems.extend(conflicts)
    return result
