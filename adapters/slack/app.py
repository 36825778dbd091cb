"""The Slack app: slack-bolt's AsyncApp behind ``POST /slack/events``.

Every request's signature (and its 5-minute replay window) is verified on the raw bytes
before bolt sees it (``routes.dispatch``, ``envelope.verify``). Bolt answers
``url_verification``, and acknowledges events before the listeners run, so
Slack gets its 200 well inside 3 s. ``authorize`` is the one place a workspace becomes
a tenant (``adapters/slack/authority.py``): the authorized workspace must be bound in a
tenant file, and the tenant decided there travels on every message the listeners build;
no other field of the body is consulted. The bot token comes from
``adapters/slack/credentials.py``. An unknown team is refused and logged.

A tenant may bring its own Slack app: its events arrive at ``/slack/events/<tenant>``,
signed with the secret named by ``slack.signing_secret_env``, and are accepted only for
that tenant's own workspaces — a signature by one tenant's app never speaks for another.

This module builds the bolt apps and decides the tenant; what the listeners do lives by
surface: messages, edits and uninstalls in ``events.py``, the slash command, shortcut
and buttons in ``interactions.py``, posting in ``delivery.py``.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from typing import Any, cast

from slack_bolt.app.async_app import AsyncApp
from slack_bolt.authorization import AuthorizeResult
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.authority import (
    CONTEXT_KEY,
    RefusedWorkspace,
    SlackAuthority,
    authority_of,
    decide,
)
from adapters.slack.credentials import SlackCredentials
from adapters.slack.delivery import SlackThreadDelivery, web_client
from adapters.slack.events import SlackEvents
from adapters.slack.installations import MongoInstallationStore
from adapters.slack.interactions import SlackInteractions
from adapters.slack.payloads import BlockActions, EventCallback, MessageShortcut, SlashCommand
from core.engine import Engine, UnknownTenant

log = logging.getLogger("switchboard.slack")
UNBOUND_WORKSPACE = (
    ":warning: This Slack workspace is not connected to a Switchboard tenant yet, so I "
    "can't answer here. Ask the operator of this Switchboard to add its team id to a "
    "tenant file (`[slack] team_ids`); the server's log names the id it refused.")


@dataclass(frozen=True, slots=True)
class SignedApp:
    """A bolt app and the secret its requests are signed with (checked on the raw bytes
    before bolt sees them, see ``adapters/slack/envelope.py``)."""

    signing_secret: str
    bolt: AsyncApp
    only_tenant: str | None = None
    """The tenant whose own app this is; None for the shared app."""


class SlackAdapter:
    def __init__(self, engine: Engine, *, api_url: str,
                 signing_secret: str = "",
                 installations: MongoInstallationStore | None = None) -> None:
        self._engine = engine
        self._api_url = api_url
        self._credentials = SlackCredentials(api_url, installations)
        self._events = SlackEvents(engine, self._credentials, api_url)
        self._interactions = SlackInteractions(engine, api_url)
        self._own: dict[str, SignedApp] = {}
        self.shared = SignedApp(signing_secret, self._build(signing_secret, None)) \
            if signing_secret else None

    def own_app(self, tenant_id: str) -> SignedApp | None:
        """The app of a tenant that brings its own Slack app, or None if it does not."""
        try:
            tenant = self._engine.tenant(tenant_id)
        except UnknownTenant:
            return None
        env = tenant.slack.signing_secret_env
        secret = os.environ.get(env, "") if env else ""
        if not secret:
            return None
        cached = self._own.get(tenant_id)
        if cached is None or cached.signing_secret != secret:
            cached = SignedApp(secret, self._build(secret, tenant_id), tenant_id)
            self._own[tenant_id] = cached
        return cached

    def forget_installation(self, team_id: str) -> None:
        self._credentials.forget(team_id)

    def _build(self, signing_secret: str, only_tenant: str | None) -> AsyncApp:
        """One bolt app and its listeners. Bolt injects arguments by parameter name, so
        it is given plain functions rather than bound methods."""
        events, interactions = self._events, self._interactions

        async def authorize(context: dict[str, Any], enterprise_id: str | None,
                            team_id: str | None) -> AuthorizeResult | None:
            return await self._authorize(context, enterprise_id, team_id, only_tenant)

        async def on_message(body: dict[str, Any], client: AsyncWebClient,
                             context: dict[str, Any]) -> None:
            await events.on_message(cast(EventCallback, body), client, context,
                                    authority_of(context))

        async def on_command(ack: Any, body: dict[str, Any], client: AsyncWebClient,
                             respond: Any, context: dict[str, Any]) -> None:
            await ack()
            await interactions.on_command(cast(SlashCommand, body), client, respond,
                                          authority_of(context),
                                          str(context.get("bot_token") or ""))

        async def on_action(ack: Any, body: dict[str, Any], client: AsyncWebClient,
                            context: dict[str, Any]) -> None:
            await ack()
            await interactions.on_action(cast(BlockActions, body), client,
                                         authority_of(context))

        async def on_shortcut(ack: Any, body: dict[str, Any], client: AsyncWebClient,
                              context: dict[str, Any]) -> None:
            await ack()
            await interactions.on_shortcut(cast(MessageShortcut, body), client,
                                           authority_of(context),
                                           str(context.get("bot_user_id") or ""))

        async def on_uninstall(body: dict[str, Any], context: dict[str, Any]) -> None:
            # Bolt skips ``authorize`` for these two events (the token may be gone). The
            # workspace is the one bolt extracted from the signed body (the installation
            # the event was delivered for); only the shared app stores installations.
            workspace = str(context.get("team_id") or context.get("enterprise_id") or "")
            await events.on_uninstall(body, workspace, only_tenant)

        # Requests reach bolt only through ``routes.dispatch``, which has verified the
        # signature on the raw bytes (``envelope.verify``); bolt's own check of the same
        # HMAC over the decoded text would be the second one per request.
        # The client has no token of its own (``None``, not ""): ``authorize`` gives one per
        # request, and a token here would only make bolt warn at every start that it is
        # ignored. A workspace bound to no tenant gets words that say so (bolt's default
        # tells users to reinstall the app, which cannot help).
        app = AsyncApp(signing_secret=signing_secret, request_verification_enabled=False,
                       authorize=authorize,  # type: ignore[arg-type]  # None = refused
                       client=web_client(None, self._api_url), process_before_response=False,
                       user_facing_authorize_error_message=UNBOUND_WORKSPACE,
                       logger=logging.getLogger("switchboard.slack.bolt"))
        app.action(re.compile(
            r"^(feedback_up|feedback_down|follow_up_\d+|confirm_yes|confirm_no)$"))(on_action)
        app.event("app_mention")(on_message)
        app.event("message")(on_message)
        app.shortcut("ask_switchboard")(on_shortcut)
        app.event("app_uninstalled")(on_uninstall)
        app.event("tokens_revoked")(on_uninstall)
        app.command(re.compile(r"^/[a-z0-9_-]+$"))(on_command)
        return app

    def refusal(self, team_id: str | None, enterprise_id: str | None,
                only_tenant: str | None) -> str | None:
        """What a user in a workspace that no tenant may serve is told, naming its id;
        None when a tenant takes it. The same decision as ``authorize``."""
        try:
            decide(self._engine.tenant_for, team_id, enterprise_id, only_tenant)
        except RefusedWorkspace as exc:
            log.warning("Slack command refused: %s", exc, extra={
                "team_id": team_id or "", "enterprise_id": enterprise_id or "",
                "channel": "slack"})
            workspace = team_id or enterprise_id or "?"
            return (f":warning: This Slack workspace ({workspace}) is not connected to a "
                    "Switchboard tenant, so I can't answer here. Ask the operator of this "
                    f"Switchboard to add team id {workspace} to a tenant file "
                    "(`[slack] team_ids`).")
        return None

    async def _authorize(self, context: dict[str, Any], enterprise_id: str | None,
                         team_id: str | None, only_tenant: str | None
                         ) -> AuthorizeResult | None:
        try:
            authority = decide(self._engine.tenant_for, team_id, enterprise_id, only_tenant)
        except RefusedWorkspace as exc:
            log.warning("Slack request refused: %s", exc, extra={
                "team_id": team_id or "", "enterprise_id": enterprise_id or "",
                "channel": "slack", **({"tenant": only_tenant} if only_tenant else {})})
            return None
        credentials = await self._credentials.for_authority(authority)
        if credentials is None:
            return None
        context[CONTEXT_KEY] = authority
        return AuthorizeResult(enterprise_id=enterprise_id, team_id=team_id,
                               bot_token=credentials.token,
                               bot_user_id=credentials.bot_user_id,
                               bot_id=credentials.bot_id)

    async def redelivery(self, address: dict[str, object]) -> SlackThreadDelivery | None:
        """A delivery for a journaled address: the same thread, with the workspace's
        current token. None when the workspace or its token is gone."""
        try:
            tenant = self._engine.tenant(str(address.get("tenant", "")))
        except UnknownTenant:
            return None
        authority = SlackAuthority(tenant, str(address.get("workspace", "")),
                                   own_app=bool(address.get("own_app")))
        credentials = await self._credentials.for_authority(authority)
        if credentials is None:
            return None
        return SlackThreadDelivery(
            web_client(credentials.token, self._api_url), str(address.get("channel", "")),
            str(address.get("thread_ts", "")), str(address.get("user", "")),
            address=dict(address), resume_existing=True)
