"""The Slack routes of the web process: the shared app's events, tenants' own apps,
and the OAuth install flow. Each answers a 404 with a clear message when its part of
Slack is not configured (rather than a bare 404, or a 5xx that would page an operator
for a feature that is simply off)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from urllib.parse import parse_qs

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.request.async_request import AsyncBoltRequest

from adapters.http_input import decode_utf8, read_bytes
from adapters.slack.app import SignedApp, SlackAdapter
from adapters.slack.envelope import check_shape, verify
from adapters.slack.oauth import SlackOAuth
from observability import metrics

log = logging.getLogger("switchboard.slack")


def _unbound_command(slack: SlackAdapter | None, app: SignedApp, text: str,
                     content_type: str) -> str | None:
    """A slash command from a workspace no tenant serves: the reply that names its team
    id (bolt's own would tell the user to reinstall the app, which cannot help)."""
    if slack is None or not content_type.startswith("application/x-www-form-urlencoded"):
        return None
    fields = parse_qs(text)
    if "command" not in fields:
        return None
    return slack.refusal(fields.get("team_id", [""])[0] or None,
                         fields.get("enterprise_id", [""])[0] or None, app.only_tenant)


def mount(app: web.Application, adapter: Callable[[], SlackAdapter | None],
          oauth: Callable[[], SlackOAuth | None]) -> None:

    async def dispatch(app: SignedApp, request: web.Request) -> web.StreamResponse:
        """Verify the raw bytes, then check the body's shape, then hand it to bolt. This
        is the only way into a bolt app: bolt's own signature check is off. The time to
        the answer is the Slack ack SLO (docs/slo.md)."""
        started = time.perf_counter()
        kind = "event" if request.content_type == "application/json" else "interactive"
        try:
            response = await _dispatch(app, request)
        finally:
            metrics.SLACK_ACK_SECONDS.labels(kind).observe(time.perf_counter() - started)
        return response

    async def _dispatch(app: SignedApp, request: web.Request) -> web.StreamResponse:
        raw = await read_bytes(request)
        if not verify(app.signing_secret, raw,
                      request.headers.get("X-Slack-Request-Timestamp", ""),
                      request.headers.get("X-Slack-Signature", "")):
            log.warning("Slack request with a bad or stale signature",
                        extra={"channel": "slack", "path": request.path})
            return web.json_response({"error": "invalid signature"}, status=401)
        text = decode_utf8(raw)
        check_shape(text, request.headers.get("Content-Type", ""))
        refused = _unbound_command(adapter(), app, text,
                                   request.headers.get("Content-Type", ""))
        if refused is not None:
            return web.json_response({"response_type": "ephemeral", "text": refused})
        response = await app.bolt.async_dispatch(AsyncBoltRequest(
            body=text, query=request.query_string,
            headers=request.headers))  # type: ignore[arg-type]  # bolt reads it as a mapping
        return await to_aiohttp_response(response)

    async def events(request: web.Request) -> web.StreamResponse:
        slack = adapter()
        if slack is None or slack.shared is None:
            return web.json_response({"error": "Slack is not configured: set "
                                               "SLACK_SIGNING_SECRET"}, status=404)
        return await dispatch(slack.shared, request)

    async def tenant_events(request: web.Request) -> web.StreamResponse:
        tenant_id = request.match_info["tenant"]
        slack = adapter()
        own = slack.own_app(tenant_id) if slack is not None else None
        if own is None:
            log.warning("Slack events for a tenant with no own Slack app",
                        extra={"tenant": tenant_id, "channel": "slack"})
            return web.json_response({"error": "no Slack app of its own is configured for "
                                               "this tenant (slack.signing_secret_env)"},
                                     status=404)
        return await dispatch(own, request)

    def not_configured() -> web.Response:
        return web.json_response({"error": "Slack OAuth is not configured: set "
                                           "SLACK_CLIENT_ID, SLACK_CLIENT_SECRET and "
                                           "SLACK_TOKEN_ENCRYPTION_KEY"}, status=404)

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
