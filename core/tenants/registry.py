"""The one place a message's platform binding becomes a tenant.

The registry keeps an immutable snapshot (configs plus a binding index) and swaps it
atomically on reload, so a resolve never sees half a reload. A file that turns invalid
keeps its last good version in service (and the problem is logged); a tenant whose file
is deleted disappears. Bindings claimed by two tenants route to neither.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from pathlib import Path

from core.messages import Binding, InboundMessage
from core.tenants.loader import (
    LoadResult,
    TenantProblem,
    binding_conflicts,
    bindings_of,
    load_directory,
)
from core.tenants.models import TenantConfig
from observability import metrics

log = logging.getLogger("switchboard.tenants")

class UnknownTenant(LookupError):
    """No tenant owns this binding (or has this id). The message must be rejected,
    never answered."""

    def __init__(self, binding: Binding | None = None, tenant_id: str = "") -> None:
        super().__init__(f"no tenant is bound to {binding.channel} {binding.value!r}"
                         if binding is not None else f"no tenant {tenant_id!r}")
        self.binding = binding


@dataclass(frozen=True, slots=True)
class _Snapshot:
    tenants: dict[str, TenantConfig] = field(default_factory=dict)
    index: dict[Binding, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ReloadReport:
    loaded: tuple[str, ...]
    changed: tuple[str, ...]
    removed: tuple[str, ...]
    problems: tuple[TenantProblem, ...]


def _directory_signature(directory: Path) -> tuple[tuple[str, int, int], ...]:
    try:
        return tuple(sorted((p.name, p.stat().st_mtime_ns, p.stat().st_size)
                            for p in directory.glob("*.toml")))
    except OSError:
        return ()


class TenantRegistry:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._snapshot = _Snapshot()
        self._signature: tuple[tuple[str, int, int], ...] = ()

    @classmethod
    def from_configs(cls, *configs: TenantConfig) -> TenantRegistry:
        """A registry over in-memory configs (no directory): for tests and benchmarks."""
        registry = cls(Path("/nonexistent"))
        registry._install({c.id: c for c in configs}, {c.id: Path(f"{c.id}.toml")
                                                      for c in configs})
        return registry

    def tenant_ids(self) -> list[str]:
        return sorted(self._snapshot.tenants)

    def get(self, tenant_id: str) -> TenantConfig:
        try:
            return self._snapshot.tenants[tenant_id]
        except KeyError:
            raise UnknownTenant(tenant_id=tenant_id) from None

    def resolve(self, binding: Binding) -> TenantConfig:
        """The tenant a platform binding (team, guild, widget key) names."""
        snapshot = self._snapshot
        tenant_id = snapshot.index.get(binding)
        config = snapshot.tenants.get(tenant_id) if tenant_id else None
        if config is None:
            metrics.UNKNOWN_TENANT.labels(channel=binding.channel).inc()
            raise UnknownTenant(binding)
        return config

    def for_message(self, message: InboundMessage) -> TenantConfig:
        """The tenant of a message: the one its adapter authenticated, else its binding's.

        An authenticated tenant wins over anything the binding says; a tenant that has
        since been removed is unknown (the message is rejected, never re-homed).
        """
        if message.tenant_id:
            config = self._snapshot.tenants.get(message.tenant_id)
            if config is None:
                metrics.UNKNOWN_TENANT.labels(channel=message.channel).inc()
                raise UnknownTenant(tenant_id=message.tenant_id)
            return config
        return self.resolve(message.binding)

    def reload(self) -> ReloadReport:
        """Re-read the directory; keep last-good configs for files that became invalid."""
        self._signature = _directory_signature(self.directory)
        result = load_directory(self.directory)
        previous = self._snapshot.tenants
        present = {p.stem for p in self.directory.glob("*.toml")} if self.directory.is_dir() \
            else set()
        merged: dict[str, TenantConfig] = dict(result.tenants)
        for tenant_id, config in previous.items():
            if tenant_id not in merged and tenant_id in present:
                merged[tenant_id] = config
        files = {**{t: self.directory / f"{t}.toml" for t in merged}, **result.files}
        self._install(merged, files)
        for problem in result.problems:
            log.error("tenant file problem: %s", problem,
                      extra={"tenant": Path(problem.file).stem})
        changed = tuple(t for t in result.tenants if previous.get(t) not in (None,
                                                                             result.tenants[t]))
        report = ReloadReport(
            loaded=tuple(sorted(merged)),
            changed=changed,
            removed=tuple(sorted(set(previous) - set(merged))),
            problems=tuple(result.problems),
        )
        log.info("tenants loaded: %s", ", ".join(report.loaded) or "none")
        return report

    def _install(self, tenants: dict[str, TenantConfig], files: dict[str, Path]) -> None:
        conflicted, _ = binding_conflicts(tenants, files)
        index = {b: t for t, c in tenants.items() for b in bindings_of(c) if b not in conflicted}
        self._snapshot = _Snapshot(tenants=tenants, index=index)

    def changed_on_disk(self) -> bool:
        return _directory_signature(self.directory) != self._signature

    async def watch(self, interval_s: float = 2.0) -> None:
        """Reload whenever a tenant file is added, changed or removed. Runs until cancelled."""
        while True:
            await asyncio.sleep(interval_s)
            if await asyncio.to_thread(self.changed_on_disk):
                await asyncio.to_thread(self.reload)


def describe(result: LoadResult) -> list[str]:
    return [str(p) for p in result.problems]
