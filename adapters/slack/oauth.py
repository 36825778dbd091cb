"""Installing the shared Slack app into a workspace: ``/slack/install`` and the redirect.

The install page sends the browser to Slack's consent screen with a one-time ``state``
that is kept in shared state (so any web worker can finish the flow) and in a cookie (so
only the browser that started the flow can finish it). The redirect exchanges the code
with ``oauth.v2.access`` and stores the installation with its bot token encrypted. Which
tenant the workspace serves is decided by tenant files (``slack.team_ids``), never by
the install itself: an install of an unbound workspace is kept, logged, and the page
tells the installer what to ask the operator.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlencode

from aiohttp import web
from slack_sdk.errors import SlackApiError

from adapters.slack.delivery import web_client
from adapters.slack.installations import Installation, MongoInstallationStore
from core.engine import Engine, UnknownTenant
from core.messages import Binding
from observability.logging import register_secret

log = logging.getLogger("switchboard.slack.oauth")

BOT_SCOPES = ("app_mentions:read", "channels:history", "chat:write", "commands", "files:read",
              "groups:history", "im:history", "users:read")
"""The same scopes as ``docs/slack-manifest.yml`` (a test keeps the two equal)."""
STATE_TTL_S = 600
COOKIE = "switchboard-slack-state"


@dataclass(frozen=True, slots=True)
class OAuthSettings:
    client_id: str
    client_secret: str
    api_url: str
    redirect_uri: str = ""
    """Empty: derived from the request (``https://HOST/slack/oauth_redirect``)."""

    @property
    def authorize_url(self) -> str:
        """Slack's consent screen sits beside the Web API (``/oauth/v2/authorize``)."""
        return self.api_url.rstrip("/").removesuffix("/api") + "/oauth/v2/authorize"


def _page(title: str, body: str, status: int = 200) -> web.Response:
    return web.Response(status=status, content_type="text/html", text=(
        f"<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>"
        f"{html.escape(title)}</title><meta name=\"viewport\" content=\"width=device-width\">"
        "</head><body style=\"font-family:system-ui;max-width:36rem;margin:3rem auto;"
        f"line-height:1.5\"><h1>{html.escape(title)}</h1>{body}</body></html>"))


class SlackOAuth:
    def __init__(self, settings: OAuthSettings, store: MongoInstallationStore,
                 engine: Engine,
                 on_installed: Callable[[str], None] = lambda team_id: None) -> None:
        self._settings = settings
        self._store = store
        self._engine = engine
        self._on_installed = on_installed

    def _redirect_uri(self, request: web.Request) -> str:
        return self._settings.redirect_uri or \
            f"{request.scheme}://{request.host}/slack/oauth_redirect"

    async def install(self, request: web.Request) -> web.Response:
        state = await self._engine.issue_nonce("slack-oauth", STATE_TTL_S)
        query = urlencode({"client_id": self._settings.client_id, "scope": ",".join(BOT_SCOPES),
                           "state": state, "redirect_uri": self._redirect_uri(request)})
        url = f"{self._settings.authorize_url}?{query}"
        response = _page("Add Switchboard to Slack", (
            "<p>Switchboard answers questions in your Slack channels and threads.</p>"
            f"<p><a href=\"{html.escape(url)}\" style=\"display:inline-block;padding:.6rem "
            "1rem;background:#4a154b;color:#fff;border-radius:6px;text-decoration:none\">"
            "Add to Slack</a></p>"))
        response.set_cookie(COOKIE, state, max_age=STATE_TTL_S, httponly=True,
                            samesite="Lax", secure=request.secure)
        return response

    async def redirect(self, request: web.Request) -> web.Response:
        if request.query.get("error"):
            return _page("Installation cancelled", "<p>Slack reported: "
                         f"{html.escape(request.query['error'])}. Nothing was installed.</p>")
        code, state = request.query.get("code", ""), request.query.get("state", "")
        if not code or not state:
            return _page("Installation failed", "<p>The link is missing its code or state; "
                         "start again from the install page.</p>", 400)
        if request.cookies.get(COOKIE) != state or \
                not await self._engine.redeem_nonce("slack-oauth", state):
            log.warning("Slack OAuth redirect with an unknown or expired state",
                        extra={"channel": "slack"})
            return _page("Installation expired", "<p>This install link has expired or was "
                         "started in another browser. <a href=\"/slack/install\">Start "
                         "again</a>.</p>", 400)
        try:
            result = await web_client("", self._settings.api_url).oauth_v2_access(
                client_id=self._settings.client_id, client_secret=self._settings.client_secret,
                code=code, redirect_uri=self._redirect_uri(request))
        except SlackApiError as exc:
            error = str(exc.response.get("error", "")) if exc.response is not None else ""
            log.warning("oauth.v2.access failed: %s", error, extra={"channel": "slack"})
            return _page("Installation failed", f"<p>Slack refused the installation "
                         f"({html.escape(error)}). Start again from the install page.</p>", 400)
        team = result.get("team") or {}
        enterprise = result.get("enterprise") or {}
        token = str(result.get("access_token", ""))
        register_secret(token)
        installation = Installation(
            platform="slack", team_id=str(team.get("id", "")), bot_token=token,
            bot_user_id=str(result.get("bot_user_id", "")), bot_id=str(result.get("bot_id", "")),
            enterprise_id=str(enterprise.get("id", "")), team_name=str(team.get("name", "")),
            scopes=tuple(str(result.get("scope", "")).split(",")),
            installer_user_id=str((result.get("authed_user") or {}).get("id", "")))
        await self._store.save(installation)
        self._on_installed(installation.team_id)
        name = html.escape(installation.team_name or installation.team_id)
        try:
            tenant = self._engine.tenant_for(Binding("slack", installation.team_id))
        except UnknownTenant:
            log.warning("Slack app installed in a workspace bound to no tenant",
                        extra={"channel": "slack", "team_id": installation.team_id})
            return _page("Installed — not connected yet", (
                f"<p>Switchboard is installed in {name}, but this workspace is not connected "
                "to a Switchboard tenant yet, so it will not answer. Ask your operator to "
                f"add <code>{html.escape(installation.team_id)}</code> to "
                "<code>slack.team_ids</code> in your tenant file.</p>"))
        log.info("Slack app installed", extra={"tenant": tenant.id, "channel": "slack",
                                               "team_id": installation.team_id})
        return _page("Switchboard is installed", (
            f"<p>Switchboard now answers in {name} for {html.escape(tenant.name)}. Mention "
            "it in a channel, or send it a direct message.</p>"))
