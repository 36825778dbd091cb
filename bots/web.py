"""The web process: health, readiness, metrics and (for now) a placeholder page.

Resources are opened and closed in ``cleanup_ctx``; handlers reach them through a typed
``AppKey``. Slack, the widget and the admin API mount here as they land.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import logging
import os
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from adapters.admin_api.routes import AdminApi
from adapters.console.auth import ConsoleAuth
from adapters.console.routes import Console
from adapters.discord.bot import DiscordAdapter
from adapters.http_input import (
    MAX_BODY_BYTES,
    bearer_token,
    header_bytes,
    input_errors,
    install_log_filter,
)
from adapters.slack.app import SlackAdapter
from adapters.slack.installations import MongoInstallationStore
from adapters.slack.oauth import OAuthSettings, SlackOAuth
from adapters.slack.routes import mount as mount_slack
from adapters.slack.token_cipher import CipherKeyError, TokenCipher
from adapters.source_page import SourceLinks
from adapters.source_page import mount as mount_sources
from adapters.terminal.remote import LocalInterface
from adapters.widget.identity import TokenSigner, load_key
from adapters.widget.routes import demo_page
from adapters.widget.routes import mount as mount_widget
from adapters.widget.server import WidgetAdapter
from bots import local_control
from bots.bootstrap import Services, open_services
from bots.discord_main import discord_bots, discord_configured, point_at, redeliver_discord
from bots.scheduler import http_session, start_scheduler
from bots.settings import Settings
from core.intake.recovery import Recovery, Redeliver
from core.state.redis_streams import RedisStreams
from core.tenants.registry import UnknownTenant
from core.turns.chain import Delivery
from core.turns.streams import ConversationStreams, MemoryStreams

log = logging.getLogger("switchboard.web")

SERVICES = web.AppKey("services", Services)
DEMO_TENANT = "demo"
CHECK_TIMEOUT_S = 2.0


async def healthz(request: web.Request) -> web.Response:
    """Liveness; a worker of ``serve --workers N`` also says which one it is."""
    worker = os.environ.get("SWITCHBOARD_WORKER", "")
    return web.json_response({"status": "ok", **({"worker": worker} if worker else {})})


async def _check(name: str, services: Services) -> dict[str, object]:
    started = time.perf_counter()
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_S):
            await services.checks[name]()
        status, error = "ok", ""
    except Exception as exc:
        status, error = "failing", f"{type(exc).__name__}: {exc}"[:300]
    result: dict[str, object] = {
        "status": status, "backend": services.descriptions.get(name, ""),
        "ms": round((time.perf_counter() - started) * 1000, 2)}
    if error:
        result["error"] = error
    return result


def is_operator(request: web.Request) -> bool:
    """Whether the request may see operational details (which dependencies, where, and
    their errors; metrics, which name every tenant). With ``SWITCHBOARD_OPERATOR_TOKEN``
    set, only a request carrying it as a Bearer token may; without it, only a client on
    this machine (loopback) — set the token whenever a proxy on this machine forwards
    the public's requests."""
    token = request.app[SERVICES].settings.operator_token
    if token:
        given = bearer_token(request)
        return bool(given) and hmac.compare_digest(header_bytes(given), token.encode())
    try:
        return ipaddress.ip_address((request.remote or "").split("%")[0]).is_loopback
    except ValueError:
        return False


async def readyz(request: web.Request) -> web.Response:
    """Public: ready, loading its tenants' first documents, or not ready; nothing more.
    An operator also gets every check, and which tenants are still loading."""
    services = request.app[SERVICES]
    names = sorted(services.checks)
    results = await asyncio.gather(*(_check(n, services) for n in names))
    checks = dict(zip(names, results, strict=True))
    up = all(c["status"] == "ok" for c in checks.values())
    loading = dict(services.knowledge.loading)
    ready = up and not loading
    status = "ready" if ready else "loading_knowledge" if up else "not_ready"
    body: dict[str, object] = {"status": status}
    if is_operator(request):
        body.update(checks=checks, tenants=len(services.tenants.tenant_ids()))
        if loading:
            body["loading_knowledge"] = {t: f"{n} documents so far" for t, n in loading.items()}
    return web.json_response(body, status=200 if ready else 503)


async def metrics(request: web.Request) -> web.Response:
    if not is_operator(request):
        return web.json_response({"error": "metrics need the operator token: "
                                           "Authorization: Bearer $SWITCHBOARD_OPERATOR_TOKEN"},
                                 status=401)
    body = await asyncio.to_thread(generate_latest, REGISTRY)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def index(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    key = ""
    with contextlib.suppress(UnknownTenant):
        key = services.tenants.get(DEMO_TENANT).widget.public_key
    return web.Response(text=demo_page(key, f"{request.scheme}://{request.host}"),
                        content_type="text/html")


async def favicon(request: web.Request) -> web.Response:
    return web.Response(status=204)  # no icon, and no 404 in the browser's console


async def _slack(services: Services, settings: Settings
                 ) -> tuple[SlackAdapter, SlackOAuth | None]:
    """The Slack adapter (shared app if SLACK_SIGNING_SECRET is set; tenants' own apps
    always) and the OAuth flow if the shared app's client credentials and the token
    encryption key are all set."""
    env = os.environ
    key = env.get("SLACK_TOKEN_ENCRYPTION_KEY", "")
    installations = None
    if key:
        try:
            installations = MongoInstallationStore(services.mongo.db, TokenCipher(key))
        except CipherKeyError as exc:
            log.error("Slack installations are off: %s", exc)
    adapter = SlackAdapter(services.engine, api_url=settings.slack_api_url,
                           signing_secret=env.get("SLACK_SIGNING_SECRET", ""),
                           installations=installations)
    client_id, client_secret = env.get("SLACK_CLIENT_ID", ""), env.get("SLACK_CLIENT_SECRET", "")
    if not (client_id and client_secret and installations is not None):
        if client_id or client_secret:
            log.warning("Slack OAuth is off: SLACK_CLIENT_ID, SLACK_CLIENT_SECRET and "
                        "SLACK_TOKEN_ENCRYPTION_KEY must all be set")
        return adapter, None
    flow = SlackOAuth(OAuthSettings(client_id, client_secret, settings.slack_api_url,
                                    env.get("SLACK_REDIRECT_URI", "")),
                      installations, services.engine,
                      on_installed=adapter.forget_installation)
    return adapter, flow


def _redeliver(slack: SlackAdapter | None, widget: WidgetAdapter,
               discord: list[DiscordAdapter]) -> Redeliver:
    """Rebuild the reply sink of a journaled turn from its address, by channel."""
    to_discord = redeliver_discord(discord)

    async def redeliver(address: Mapping[str, Any]) -> Delivery | None:
        kind = address.get("kind")
        if kind == "slack-thread" and slack is not None:
            return await slack.redelivery(dict(address))
        if kind == "widget":
            return widget.redelivery(dict(address))
        if kind == "discord-channel":
            return await to_discord(address)
        return None

    return redeliver


@contextlib.asynccontextmanager
async def _in_process(services: Services, settings: Settings, which: frozenset[str]
                      ) -> AsyncIterator[list[DiscordAdapter]]:
    """The scheduler's jobs and the Discord gateway, in this process, for as long as it
    serves (``serve`` on the embedded defaults: the local index has one writer)."""
    http = http_session()
    scheduler = start_scheduler(services, http) if "scheduler" in which else None
    runs: list[asyncio.Task[None]] = []
    bots: list[DiscordAdapter] = []
    if "discord" in which and discord_configured(services):
        point_at(settings)
        for adapter, token in discord_bots(services):
            bots.append(adapter)
            runs.append(asyncio.create_task(adapter.client.start(token)))
        log.info("Discord gateway running in this process (%d bots)", len(bots))
    try:
        yield bots
    finally:
        if scheduler is not None:
            scheduler.shutdown(wait=False)
        await http.close()
        for adapter in bots:
            await adapter.client.close()
        for run in runs:
            run.cancel()
        await asyncio.gather(*runs, return_exceptions=True)


def build_app(settings: Settings, local: str = "",
              in_process: frozenset[str] = frozenset()) -> web.Application:
    """The web process. ``local``: the loopback URL at which this process offers the
    terminal's commands (``serve.json``); "" when it should not (a worker of several).
    ``in_process``: the other processes' work this one also does ("scheduler",
    "discord"), for one process on the embedded defaults."""
    install_log_filter()
    app = web.Application(client_max_size=MAX_BODY_BYTES, middlewares=[input_errors])
    control: list[local_control.Control] = []

    async def services_ctx(app: web.Application) -> AsyncIterator[None]:
        worker = os.environ.get("SWITCHBOARD_WORKER", "")
        async with open_services(settings, watch_tenants=True, initial_ingest="background",
                                 journal=f"web-{worker}" if worker else "web") as services:
            app[SERVICES] = services
            slack[0], oauth[0] = await _slack(services, settings)
            key = await asyncio.to_thread(
                load_key, os.environ.get("SWITCHBOARD_WIDGET_KEY", ""), settings.data_dir)
            signer = TokenSigner(key)
            links[0] = SourceLinks(key)
            console[0] = ConsoleAuth(key)
            streams: ConversationStreams = RedisStreams(settings.redis_url) \
                if settings.redis_url else MemoryStreams()
            widget[0] = WidgetAdapter(services.engine, signer, streams, links[0])
            async with _in_process(services, settings, in_process) as discord:
                recovery = asyncio.create_task(Recovery(
                    services.engine, _redeliver(slack[0], widget[0], discord)
                ).run(services.orphans))
                if local:
                    control.append(await asyncio.to_thread(local_control.write,
                                                           settings.data_dir, local))
                yield
                if control:
                    await asyncio.to_thread(local_control.remove, settings.data_dir,
                                            control[0])
                recovery.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await recovery
            await widget[0].close()
            await streams.close()

    app.cleanup_ctx.append(services_ctx)
    AdminApi(lambda: app[SERVICES].engine).register(app)
    console: list[ConsoleAuth] = []
    console.append(None)  # type: ignore[arg-type]  # set once services are up
    Console(lambda: app[SERVICES].engine, lambda: console[0],
            lambda: settings.operator_token,
            https=settings.public_url.startswith("https://")).register(app)
    links: list[SourceLinks | None] = [None]
    mount_sources(app, lambda: app[SERVICES].engine, lambda: links[0])
    LocalInterface(lambda: app[SERVICES].engine,
                   lambda: control[0].token if control else "").register(app)
    slack: list[SlackAdapter | None] = [None]
    oauth: list[SlackOAuth | None] = [None]
    mount_slack(app, lambda: slack[0], lambda: oauth[0])
    widget: list[WidgetAdapter] = []
    widget.append(None)  # type: ignore[arg-type]  # set once services are up
    mount_widget(app, lambda: widget[0])
    app.router.add_get("/", index)
    app.router.add_get("/favicon.ico", favicon)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    return app
