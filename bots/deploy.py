"""``switchboard deploy plan|apply``: what the tenant files ask for against what is deployed.

Environments are overlays on the tenant files: with ``--env prod``, ``tenants/prod/<id>.toml``
(when it exists) is merged over ``tenants/<id>.toml`` key by key before validation.

``plan`` changes nothing. It validates each tenant (the file, with its overlay; every
secret variable it names set in this environment; its bindings claimed by no other
tenant; its local sources present; its schedules valid) and lists the drift between the
files and the deployment:

- **MongoDB indexes**: every index the stores create, on every collection;
- **Qdrant**: each knowledge base with sources has its alias and collection, with vectors
  of the size the tenant's embedder makes, built by that embedder;
- **Discord**: the commands registered in each bound guild against the command registry;
- **Slack**: the scopes the installation's token was granted against the app manifest;
- **scheduled jobs**: the jobs the running scheduler last recorded against the sources'
  schedules.

Exit codes: 0 in sync, 2 drift (or something only a person can fix), 1 an error (an
invalid tenant, a dependency that cannot be reached). ``apply`` repairs what it can,
tenant by tenant, reporting each, and stops at the first tenant that fails unless given
``--continue``; what it cannot repair (a Slack app to reinstall, a scheduler to start) it
says how to fix.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import aiohttp
import yaml
from pydantic import BaseModel
from slack_sdk.errors import SlackApiError

from adapters.slack.delivery import web_client
from bots.settings import Settings
from core.tenants.loader import load_directory
from core.tenants.models import TenantConfig

log = logging.getLogger("switchboard.deploy")

ROOT = Path(__file__).resolve().parent.parent
MANIFEST = ROOT / "docs" / "slack-manifest.yml"
SCHEDULER_STALE = timedelta(minutes=5)

Kind = Literal["invalid", "drift", "manual"]


@dataclass(slots=True)
class Finding:
    tenant: str
    """The tenant it concerns; "" for the shared deployment (MongoDB indexes)."""
    kind: Kind
    """``invalid``: the files are wrong; ``drift``: apply repairs it; ``manual``: a
    person must (reinstall the Slack app, start the scheduler)."""
    what: str
    detail: str
    repair: Callable[[], Awaitable[str]] | None = field(default=None, repr=False)


@dataclass(slots=True)
class Plan:
    tenants: list[TenantConfig]
    findings: list[Finding]

    @property
    def exit_code(self) -> int:
        if any(f.kind == "invalid" for f in self.findings):
            return 1
        return 2 if self.findings else 0


def _secret_names(config: TenantConfig) -> list[tuple[str, str]]:
    """(field, variable) for every ``*_env`` field the tenant sets."""
    found: list[tuple[str, str]] = []

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, BaseModel):
            for name in type(value).model_fields:
                walk(f"{prefix}{name}.", getattr(value, name))
        elif prefix.endswith("_env.") and isinstance(value, str) and value:
            found.append((prefix[:-1], value))
    walk("", config)
    return found


def validate(settings: Settings, env: str, wanted: Sequence[str]
             ) -> tuple[list[TenantConfig], list[Finding]]:
    """The tenants to deploy (with the environment's overlays) and what is wrong in the
    files: problems, missing secrets, shared bindings, missing sources."""
    result = load_directory(settings.tenants_dir, env)  # bindings claimed twice included
    findings = [Finding(Path(p.file).stem, "invalid", "tenant file", f"{p.field}: {p.reason}")
                for p in result.problems]
    unknown = [t for t in wanted if t not in result.tenants and
               not any(f.tenant == t for f in findings)]
    findings += [Finding(t, "invalid", "tenant", "no such tenant file") for t in unknown]
    chosen = [result.tenants[t] for t in (wanted or sorted(result.tenants))
              if t in result.tenants]
    for config in chosen:
        findings += check_tenant(config)
    return chosen, findings


def check_tenant(config: TenantConfig) -> list[Finding]:
    """What a valid file can still get wrong here: secrets unset, sources missing."""
    findings = []
    for name, variable in _secret_names(config):
        if not os.environ.get(variable):
            findings.append(Finding(config.id, "invalid", "secret",
                                    f"{name} names {variable}, which is not set here"))
    for source in config.knowledge.sources:
        if "://" in source.path:
            continue
        path = Path(source.path)
        if not (path if path.is_absolute() else ROOT / path).exists():
            findings.append(Finding(config.id, "invalid", "source",
                                    f"{source.path} does not exist"))
    return findings


async def mongo_drift(db: Any) -> list[Finding]:
    """Indexes each store creates (``INDEXES``), against what the database has."""
    from core.stores.mongo_audit import MongoAuditLog
    from core.stores.mongo_documents import MongoCatalog
    from core.stores.mongo_sessions import MongoSessionStore
    stores: list[MongoSessionStore | MongoAuditLog | MongoCatalog] = [
        MongoSessionStore(db), MongoAuditLog(db), MongoCatalog(db)]

    async def repair() -> str:
        for store in stores:
            await store.ensure_indexes()
        return "indexes created"
    findings = []
    for store in stores:
        for collection, models in store.INDEXES.items():
            # compared by their fields, in order: servers name indexes their own way
            present = {tuple(i["key"]) async for i in await db[collection].list_indexes()}
            for model in sorted(models, key=lambda m: str(m.document["name"])):
                if tuple(model.document["key"]) not in present:
                    findings.append(Finding("", "drift", "mongodb index",
                                            f"{collection}.{model.document['name']} is "
                                            "missing", repair))
    return findings


async def qdrant_drift(services: Any, tenant: TenantConfig) -> list[Finding]:
    knowledge = services.knowledge
    findings = []
    for kb in sorted({s.kb for s in tenant.knowledge.sources}):
        alias = knowledge.index.alias(tenant.id, kb)
        embedder = knowledge.ingestor.embedder_for(tenant)
        sources = [s.path for s in tenant.knowledge.sources if s.kb == kb]

        async def ingest(kb: str = kb, sources: list[str] = sources) -> str:
            report = await knowledge.ingestor.ingest(tenant, sources, knowledge.root, kb=kb)
            return f"ingested: {report.summary()}"

        async def reindex(kb: str = kb, sources: list[str] = sources) -> str:
            report = await knowledge.ingestor.reindex(tenant, sources, knowledge.root, kb=kb)
            return f"re-indexed: {report.summary()}"
        if not await knowledge.index.exists(alias):
            findings.append(Finding(tenant.id, "drift", "qdrant collection",
                                    f"knowledge base {kb!r} has no collection ({alias})",
                                    ingest))
            continue
        dimension = await knowledge.index.dimension(alias)
        info = await knowledge.catalog.kb_info(tenant.id, kb)
        if dimension != embedder.dimension or (info is not None
                                               and info.embedder != embedder.name):
            built = info.embedder if info is not None else "an unknown embedder"
            findings.append(Finding(
                tenant.id, "drift", "qdrant collection",
                f"{alias} holds {dimension}-dimension vectors from {built}; the tenant's "
                f"embedder {embedder.name} makes {embedder.dimension}", reindex))
    return findings


async def discord_drift(services: Any, tenant: TenantConfig, http: aiohttp.ClientSession,
                        api: str, token: str) -> list[Finding]:
    """The guild's registered commands against the registry (names, descriptions, options)."""
    from adapters.discord.commands import application_command
    wanted = {c["name"]: c for c in (application_command(cmd) for cmd in
                                     services.commands.available(tenant, is_admin=True))}
    headers = {"Authorization": f"Bot {token}"}
    async with http.get(f"{api}/applications/@me", headers=headers) as r:
        if r.status != 200:
            return [Finding(tenant.id, "manual", "discord", f"the bot token was refused "
                                                           f"(HTTP {r.status})")]
        app_id = (await r.json())["id"]
    findings = []
    for guild in tenant.discord.guild_ids:
        url = f"{api}/applications/{app_id}/guilds/{guild}/commands"
        async with http.get(url, headers=headers) as r:
            if r.status != 200:
                findings.append(Finding(tenant.id, "manual", "discord commands",
                                        f"guild {guild}: HTTP {r.status} (is the bot in it?)"))
                continue
            registered = {c["name"]: c for c in await r.json()}
        stray = sorted(set(registered) - set(wanted))
        missing = sorted(set(wanted) - set(registered))
        changed = sorted(n for n in set(wanted) & set(registered)
                         if _shape(wanted[n]) != _shape(registered[n]))
        if not (stray or missing or changed):
            continue

        async def sync(url: str = url) -> str:
            async with http.put(url, headers=headers, json=list(wanted.values())) as r:
                r.raise_for_status()
            return f"{len(wanted)} commands registered"
        parts = [f"{label}: {', '.join(names)}" for label, names in
                 (("stray", stray), ("missing", missing), ("changed", changed)) if names]
        findings.append(Finding(tenant.id, "drift", "discord commands",
                                f"guild {guild}: " + "; ".join(parts), sync))
    return findings


def _shape(command: dict[str, Any]) -> tuple[str, str, Any]:
    options = [(o.get("name"), o.get("type"), bool(o.get("required")))
               for o in command.get("options") or []]
    return command.get("name", ""), command.get("description", ""), options


def manifest_scopes(path: Path = MANIFEST) -> set[str]:
    manifest = yaml.safe_load(path.read_text())
    return set(manifest["oauth_config"]["scopes"]["bot"])


async def slack_drift(tenant: TenantConfig, api: str) -> list[Finding]:
    """The scopes Slack reports for the tenant's bot token against the manifest's."""
    token = os.environ.get(tenant.slack.bot_token_env, "") if tenant.slack.bot_token_env \
        else ""
    if not token:
        return []
    try:
        answer = await web_client(token, api).auth_test()
    except SlackApiError as exc:
        return [Finding(tenant.id, "manual", "slack", f"the bot token was refused: "
                                                      f"{exc.response.get('error', 'unknown')}")]
    scopes = answer.headers.get("x-oauth-scopes", "")
    granted = {s.strip() for s in (scopes[0] if isinstance(scopes, list) else scopes).split(",")
               if s.strip()}
    missing = sorted(manifest_scopes() - granted)
    if not missing:
        return []
    return [Finding(tenant.id, "manual", "slack scopes",
                    f"the installation lacks {', '.join(missing)}: reinstall the app from "
                    "/slack/install (or the app's settings) to grant them")]


async def schedule_drift(services: Any, tenant: TenantConfig) -> list[Finding]:
    """The scheduler records its jobs in MongoDB (``scheduler_jobs``) as it syncs them."""
    wanted = {f"ingest:{tenant.id}:{s.kb}:{s.path}": s.schedule
              for s in tenant.knowledge.sources if s.schedule}
    record = await services.mongo.db["scheduler_jobs"].find_one({"_id": "jobs"})
    if not wanted:
        return []
    if record is None or datetime.now(UTC) - record["at"].replace(tzinfo=UTC) > \
            SCHEDULER_STALE:
        return [Finding(tenant.id, "manual", "scheduled jobs",
                        f"{len(wanted)} scheduled sources, but no scheduler has recorded its "
                        "jobs in the last 5 minutes: start `switchboard scheduler` (or "
                        "`serve` on the embedded defaults)")]
    running = {j["id"]: j["cron"] for j in record.get("jobs", [])
               if j["id"].startswith(f"ingest:{tenant.id}:")}
    differs = sorted(set(wanted.items()) ^ set(running.items()))
    if not differs:
        return []
    return [Finding(tenant.id, "manual", "scheduled jobs",
                    f"the scheduler runs {sorted(running.items())} but the files ask for "
                    f"{sorted(wanted.items())}: it picks up file changes within 30 s; if "
                    "this stays, restart it")]


async def make_plan(settings: Settings, env: str, wanted: Sequence[str],
                    services: Any, loaded: Sequence[TenantConfig] | None = None) -> Plan:
    """``loaded``: the configs a running process holds (the scheduler's drift check),
    instead of reading the files again."""
    if loaded is not None:
        tenants = list(loaded)
        findings = [f for t in tenants for f in await asyncio.to_thread(check_tenant, t)]
    else:
        tenants, findings = await asyncio.to_thread(validate, settings, env, wanted)
    findings += await mongo_drift(services.mongo.db)
    http = services.http
    for tenant in tenants:
        findings += await qdrant_drift(services, tenant)
        token = os.environ.get(tenant.discord.bot_token_env or "DISCORD_BOT_TOKEN", "")
        if tenant.discord.guild_ids and token:
            findings += await discord_drift(services, tenant, http,
                                            settings.discord_api_url.rstrip("/"), token)
        if tenant.slack.team_ids:
            findings += await slack_drift(tenant, settings.slack_api_url)
        findings += await schedule_drift(services, tenant)
    return Plan(tenants, findings)


def report(plan: Plan, out: Callable[[str], None] = print) -> None:
    if not plan.findings:
        out(f"In sync: {len(plan.tenants)} tenant(s), nothing to do.")
        return
    for finding in plan.findings:
        who = finding.tenant or "(shared)"
        action = {"invalid": "fix the file", "drift": "apply repairs it",
                  "manual": "needs a person"}[finding.kind]
        if finding.what == "secret":
            action = "set it in this environment"
        out(f"{who}: {finding.what}: {finding.detail}  [{action}]")


@dataclass(slots=True)
class Deployment:
    """What ``deploy`` reads and repairs, opened without creating anything."""

    mongo: Any
    knowledge: Any
    commands: Any
    http: aiohttp.ClientSession
    """For the platforms' APIs (Discord, Slack), open for the whole run."""


@asynccontextmanager
async def open_deployment(settings: Settings) -> AsyncIterator[Deployment]:
    from bots.bootstrap import open_knowledge
    from bots.embedded_mongo import EmbeddedMongo
    from core.commands.builtins import builtin_commands
    from core.state.memory import MemoryState
    from core.stores.mongo_client import MongoConnection
    async with AsyncExitStack() as stack:
        uri = settings.mongodb_uri
        if not uri:
            embedded = EmbeddedMongo(settings.data_dir / "mongo")
            uri = await embedded.start()
            stack.push_async_callback(embedded.stop)
        mongo = MongoConnection(uri)
        stack.push_async_callback(mongo.close)
        knowledge = await open_knowledge(settings, mongo, MemoryState(), create_indexes=False)
        stack.push_async_callback(knowledge.close)
        http = await stack.enter_async_context(aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=15)))
        yield Deployment(mongo, knowledge, builtin_commands(), http)


async def run_deploy(settings: Settings, action: str, env: str, tenants: Sequence[str],
                     keep_going: bool, out: Callable[[str], None] = print) -> int:
    """``plan`` reports; ``apply`` repairs, tenant by tenant, then plans again."""
    from bots import local_control
    holder = None if settings.qdrant_url else await asyncio.to_thread(
        local_control.running, settings.data_dir)
    if holder is not None:
        out("switchboard deploy: a running serve holds the embedded stores in "
            f"{settings.data_dir}; stop it first, or point QDRANT_URL and MONGODB_URI at "
            "the shared servers the deployment uses.")
        return 1
    async with open_deployment(settings) as services:
        plan = await make_plan(settings, env, tenants, services)
        report(plan, out)
        if action == "plan" or (plan.exit_code == 1 and not keep_going):
            return plan.exit_code
        order = [""] + [t.id for t in plan.tenants]
        for tenant_id in order:
            repairs = [f for f in plan.findings if f.tenant == tenant_id and f.repair]
            done: set[Any] = set()
            try:
                for finding in repairs:
                    if finding.repair in done:
                        continue
                    assert finding.repair is not None
                    result = await finding.repair()
                    done.add(finding.repair)
                    out(f"{tenant_id or '(shared)'}: {finding.what}: {result}")
            except Exception as exc:
                out(f"{tenant_id or '(shared)'}: failed: {type(exc).__name__}: {exc}")
                if not keep_going:
                    out("stopped (use --continue to go on with the other tenants)")
                    return 1
        after = await make_plan(settings, env, tenants, services)
        out("after apply: " + ("in sync" if not after.findings else
                               f"{len(after.findings)} finding(s) left"))
        if after.findings:
            report(after, out)
        return after.exit_code
