"""The Slack routes of the web process: the shared app's events, tenants' own apps,
and the OAuth install flow. Each answers with a clear message when its part of Slack is
not configured, rather than a bare 404."""

from __future__ import annotations

import logging
from collections.abc import Callable

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.app.async_app import AsyncApp

from adapters.slack.app import SlackAdapter
from adapters.slack.oauth import SlackOAuth

log = logging.getLogger("switchboard.slack")


def mount(app: web.Application, adapter: Callable[[], SlackAdapter | None],
          oauth: Callable[[], SlackOAuth | None]) -> None:

    async def dispatch(bolt: AsyncApp, request: web.Request) -> web.StreamResponse:
        response = await bolt.async_dispatch(await to_bolt_request(request))
        return await to_aiohttp_response(response)

    async def events(request: web.Request) -> web.StreamResponse:
        slack = adapter()
        if slack is None or slack.shared is None:
            return web.json_response({"error": "Slack is not configured: set "
                                               "SLACK_SIGNING_SECRET"}, status=503)
        return await dispatch(slack.shared, request)

    async def tenant_events(request: web.Request) -> web.StreamResponse:
        tenant_id = request.match_info["tenant"]
        slack = adapter()
        bolt = slack.own_app(tenant_id) if slack is not None else None
        if bolt is None:
            log.warning("Slack events for a tenant with no own Slack app",
                        extra={"tenant": tenant_id, "channel": "slack"})
            return web.json_response({"error": "no Slack app of its own is configured for "
                                               "this tenant (slack.signing_secret_env)"},
                                     status=404)
        return await dispatch(bolt, request)

    def not_configured() -> web.Response:
        return web.json_response({"error": "Slack OAuth is not configured: set "
                                           "SLACK_CLIENT_ID, SLACK_CLIENT_SECRET and "
                                           "SLACK_TOKEN_ENCRYPTION_KEY"}, status=503)

    async def install(request: web.Request) -> web.StreamResponse:
        flow = oauth()
        return not_configured() if flow is None else await flow.install(request)

    async def redirect(request: web.Request) -> web.StreamResponse:
        flow = oauth()
        return not_configured() if flow is None else await flow.redirect(request)

    app.router.add_post("/slack/events", events)
    app.router.add_post("/slack/events/{tenant}", tenant_events)
    app.router.add_get("/slack/install", install)
    app.router.add_get("/slack/oauth_redirect", redirect)
