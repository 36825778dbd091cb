"""The bot credentials a Slack workspace is answered with.

One lookup for both places that need it: bolt's ``authorize`` for each request, and the
redelivery of a reply a crash interrupted. The shared app's workspaces use their OAuth
installation (encrypted in MongoDB, cached briefly in this process so an uninstall seen
by another worker reaches this one within ``INSTALL_CACHE_S``); a tenant's own app and a
single-workspace install use the token the tenant file names in ``slack.bot_token_env``.
The bot's own user id comes from ``auth.test``, once per token.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass

from adapters.slack.authority import SlackAuthority
from adapters.slack.delivery import web_client
from adapters.slack.installations import Installation, MongoInstallationStore
from adapters.slack.token_cipher import TokenDecryptError
from observability.logging import register_secret

log = logging.getLogger("switchboard.slack")
INSTALL_CACHE_S = 30.0


@dataclass(frozen=True, slots=True)
class BotCredentials:
    token: str
    bot_user_id: str
    bot_id: str


class SlackCredentials:
    def __init__(self, api_url: str, installations: MongoInstallationStore | None) -> None:
        self._api_url = api_url
        self.installations = installations
        self._installed: dict[str, tuple[float, Installation | None]] = {}
        self._bot_users: dict[str, tuple[str, str]] = {}

    def forget(self, team_id: str) -> None:
        """Drop the cached installation (after an install or uninstall)."""
        self._installed.pop(team_id, None)

    async def for_authority(self, authority: SlackAuthority) -> BotCredentials | None:
        """The workspace's bot credentials, or None (logged) when it has none."""
        installation = None if authority.own_app else \
            await self._installation(authority.workspace)
        if installation is not None:
            return BotCredentials(installation.bot_token, installation.bot_user_id,
                                  installation.bot_id)
        env = authority.tenant.slack.bot_token_env
        token = os.environ.get(env, "") if env else ""
        if not token:
            log.error("no Slack bot token for this workspace: install the app through "
                      "/slack/install or set the variable named by slack.bot_token_env",
                      extra={"tenant": authority.tenant.id, "team_id": authority.workspace,
                             "channel": "slack"})
            return None
        if token not in self._bot_users:
            who = await web_client(token, self._api_url).auth_test()
            self._bot_users[token] = (str(who["user_id"]), str(who.get("bot_id", "")))
        user_id, bot_id = self._bot_users[token]
        return BotCredentials(token, user_id, bot_id)

    async def _installation(self, team_id: str) -> Installation | None:
        if self.installations is None:
            return None
        cached = self._installed.get(team_id)
        now = time.monotonic()
        if cached is not None and cached[0] > now:
            return cached[1]
        try:
            installation = await self.installations.find("slack", team_id)
        except TokenDecryptError:
            log.error("the stored Slack token cannot be decrypted (was "
                      "SLACK_TOKEN_ENCRYPTION_KEY changed?); reinstall the app",
                      extra={"team_id": team_id, "channel": "slack"})
            installation = None
        if installation is not None:
            register_secret(installation.bot_token)
        self._installed[team_id] = (now + INSTALL_CACHE_S, installation)
        return installation
