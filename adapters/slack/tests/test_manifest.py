"""The manifest an operator pastes and the OAuth flow must ask for the same scopes."""

from __future__ import annotations

import re
from pathlib import Path

from adapters.slack.oauth import BOT_SCOPES, OAuthSettings

MANIFEST = Path(__file__).resolve().parents[3] / "docs" / "slack-manifest.yml"


def test_install_flow_asks_for_the_manifest_scopes() -> None:
    text = MANIFEST.read_text()
    bot = text.split("    bot:\n", 1)[1].split("settings:", 1)[0]
    assert tuple(re.findall(r"^\s+- (\S+)$", bot, re.MULTILINE)) == BOT_SCOPES


def test_manifest_subscribes_to_uninstall_events() -> None:
    events = MANIFEST.read_text().split("bot_events:", 1)[1].split("interactivity:", 1)[0]
    assert "app_uninstalled" in events and "tokens_revoked" in events


def test_consent_screen_sits_beside_the_web_api() -> None:
    assert OAuthSettings("i", "s", "https://slack.com/api/").authorize_url == \
        "https://slack.com/oauth/v2/authorize"
    assert OAuthSettings("i", "s", "http://127.0.0.1:9/api/").authorize_url == \
        "http://127.0.0.1:9/oauth/v2/authorize"
