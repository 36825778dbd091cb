"""The web process: health, readiness, metrics and (for now) a placeholder page.

Resources are opened and closed in ``cleanup_ctx``; handlers reach them through a typed
``AppKey``. Slack, the widget and the admin API mount here as they land.
"""

from __future__ import annotations

import asyncio
import html
import os
import time
from collections.abc import AsyncIterator

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from adapters.admin_api.routes import AdminApi
from adapters.slack.app import SlackAdapter
from adapters.slack.app import mount as mount_slack
from bots.bootstrap import Services, open_services
from bots.settings import Settings

SERVICES = web.AppKey("services", Services)
MAX_BODY_BYTES = 1 << 20
CHECK_TIMEOUT_S = 2.0


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


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


async def readyz(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    names = sorted(services.checks)
    results = await asyncio.gather(*(_check(n, services) for n in names))
    checks = dict(zip(names, results, strict=True))
    ready = all(c["status"] == "ok" for c in checks.values())
    body = {"status": "ready" if ready else "not_ready", "checks": checks,
            "tenants": len(services.tenants.tenant_ids())}
    return web.json_response(body, status=200 if ready else 503)


async def metrics(request: web.Request) -> web.Response:
    body = await asyncio.to_thread(generate_latest, REGISTRY)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def index(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    tenants = ", ".join(html.escape(t) for t in services.tenants.tenant_ids()) or "none"
    page = f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>Switchboard</title><meta name="viewport" content="width=device-width,initial-scale=1">
</head><body style="font-family:system-ui;max-width:40rem;margin:3rem auto;line-height:1.5">
<h1>Switchboard is running</h1>
<p>Tenants loaded: {tenants}.</p>
<p>Talk to the engine from a terminal: <code>switchboard chat --tenant demo</code>.
The embeddable web widget will be served here once it lands.</p>
<p><a href="/healthz">/healthz</a> · <a href="/readyz">/readyz</a> ·
<a href="/metrics">/metrics</a></p></body></html>"""
    return web.Response(text=page, content_type="text/html")


def build_app(settings: Settings) -> web.Application:
    app = web.Application(client_max_size=MAX_BODY_BYTES)

    async def services_ctx(app: web.Application) -> AsyncIterator[None]:
        async with open_services(settings, watch_tenants=True,
                                 initial_ingest="background") as services:
            app[SERVICES] = services
            secret = os.environ.get("SLACK_SIGNING_SECRET", "")
            slack[0] = SlackAdapter(services.engine, services.tenants, secret,
                                    settings.slack_api_url) if secret else None
            yield

    app.cleanup_ctx.append(services_ctx)
    AdminApi(lambda: (app[SERVICES].engine.deps, app[SERVICES].knowledge)).register(app)
    slack: list[SlackAdapter | None] = [None]
    mount_slack(app, lambda: slack[0])
    app.router.add_get("/", index)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    return app
