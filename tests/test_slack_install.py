"""Slack distribution against a real `switchboard serve`: OAuth installs with encrypted
tokens, uninstall cleanup, a tenant's own Slack app, and files shared for ingestion."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from cryptography.fernet import Fernet

from core.stores.mongo_client import MongoConnection
from tests.fakes.slack_api import FakeSlack, start_fake_slack
from tests.servers import start_switchboard
from tests.test_slack_events import (
    ROOT,
    SECRET,
    _ephemeral,
    mention,
    post,
    replies,
    responses_for,
    signed,
    signed_form,
)

OWN_SECRET = "umbrella-own-app-signing-secret"
OAUTH_TOKEN = "xoxb-hooli-from-oauth"
HANDBOOK = (b"# Vacation policy\n\nEvery Hooli employee gets thirty-one days of paid "
            b"vacation per year. Unused vacation days carry over to the next year.\n")


@pytest.fixture(scope="module")
async def fake() -> AsyncIterator[FakeSlack]:
    slack = FakeSlack(oauth_client=("1234.5678", "client-secret-for-tests"))
    runner = await start_fake_slack(slack)
    yield slack
    await runner.cleanup()


@pytest.fixture(scope="module")
def database(mongo_uri: str) -> str:
    return f"slack_install_{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def served(fake: FakeSlack, mongo_uri: str, database: str,
           tmp_path_factory: pytest.TempPathFactory) -> Any:
    home = tmp_path_factory.mktemp("slack-install")
    tenants = home / "tenants"
    tenants.mkdir()
    (tenants / "hooli.toml").write_text(
        'id = "hooli"\nname = "Hooli"\n[admins]\nslack = ["U0ADMIN"]\n'
        '[slack]\nteam_ids = ["T0HOOLI"]\ningest_channels = ["C0DOCS"]\n')
    (tenants / "umbrella.toml").write_text(
        'id = "umbrella"\nname = "Umbrella"\n[slack]\nteam_ids = ["T0UMB"]\n'
        'bot_token_env = "UMBRELLA_SLACK_BOT_TOKEN"\n'
        'signing_secret_env = "UMBRELLA_SLACK_SIGNING_SECRET"\n')
    (tenants / "acme.toml").write_text(
        'id = "acme"\nname = "Acme"\n[slack]\nteam_ids = ["T0ACME"]\n'
        'bot_token_env = "ACME_SLACK_BOT_TOKEN"\n')
    split = urlsplit(mongo_uri)
    env = {"PATH": "/usr/bin:/bin", "SWITCHBOARD_TENANTS_DIR": str(tenants),
           "SWITCHBOARD_DATA_DIR": str(home / "var"), "SLACK_SIGNING_SECRET": SECRET,
           "SLACK_API_URL": fake.url, "SLACK_CLIENT_ID": "1234.5678",
           "SLACK_CLIENT_SECRET": "client-secret-for-tests",
           "SLACK_TOKEN_ENCRYPTION_KEY": Fernet.generate_key().decode(),
           "MONGODB_URI": f"{split.scheme}://{split.netloc}/{database}",
           "ACME_SLACK_BOT_TOKEN": "xoxb-acme", "UMBRELLA_SLACK_BOT_TOKEN": "xoxb-umbrella",
           "UMBRELLA_SLACK_SIGNING_SECRET": OWN_SECRET, "HF_HUB_OFFLINE": "1"}
    base, process = start_switchboard(env, ROOT, home / "serve.log")
    yield base
    process.terminate()
    process.wait(timeout=30)


async def install(base: str, code: str, *, tamper_state: bool = False,
                  drop_cookie: bool = False) -> tuple[int, str]:
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar) as session:
        async with session.get(f"{base}/slack/install") as page:
            assert page.status == 200
            html = await page.text()
        link = html.split('href="', 1)[1].split('"', 1)[0].replace("&amp;", "&")
        query = parse_qs(urlsplit(link).query)
        assert query["client_id"] == ["1234.5678"] and "chat:write" in query["scope"][0]
        state = query["state"][0] + ("x" if tamper_state else "")
        if drop_cookie:
            jar.clear()
        async with session.get(f"{base}/slack/oauth_redirect",
                               params={"code": code, "state": state}) as landing:
            return landing.status, await landing.text()


def grant(team: str, token: str) -> dict[str, Any]:
    return {"access_token": token, "scope": "chat:write,commands", "bot_user_id": "U0BOT",
            "bot_id": "B0HOOLI", "app_id": "A0SWITCH", "team": {"id": team, "name": "Hooli"},
            "enterprise": None, "authed_user": {"id": "U0ADMIN"}}


async def stored(mongo_uri: str, database: str, team: str) -> dict[str, Any] | None:
    connection = MongoConnection(mongo_uri, database=database)
    try:
        return await connection.db["installations"].find_one({"_id": f"slack:{team}"})
    finally:
        await connection.close()


async def test_oauth_install_stores_an_encrypted_token_that_answers(
        served: str, fake: FakeSlack, mongo_uri: str, database: str) -> None:
    fake.oauth_grants["code-hooli"] = grant("T0HOOLI", OAUTH_TOKEN)
    status, page = await install(served, "code-hooli")
    assert status == 200 and "answers in Hooli for Hooli" in page
    [exchange] = fake.of("oauth.v2.access")
    assert exchange.payload["redirect_uri"].endswith("/slack/oauth_redirect")
    document = await stored(mongo_uri, database, "T0HOOLI")
    assert document is not None and OAUTH_TOKEN not in str(document)
    await post(served, *signed(mention("T0HOOLI", "1763771000.000100")))
    [reply] = await replies(fake, "1763771000.000100", 1)
    assert reply.token == OAUTH_TOKEN


async def test_a_forged_or_replayed_state_installs_nothing(
        served: str, fake: FakeSlack, mongo_uri: str, database: str) -> None:
    fake.oauth_grants["code-forged"] = grant("T0FORGED", "xoxb-forged")
    assert (await install(served, "code-forged", tamper_state=True))[0] == 400
    assert (await install(served, "code-forged", drop_cookie=True))[0] == 400
    assert await stored(mongo_uri, database, "T0FORGED") is None
    status, page = await install(served, "code-never-granted")
    assert status == 400 and "invalid_code" in page


async def test_install_in_an_unbound_workspace_says_so(
        served: str, fake: FakeSlack, mongo_uri: str, database: str) -> None:
    fake.oauth_grants["code-stray"] = grant("T0STRAY", "xoxb-stray")
    status, page = await install(served, "code-stray")
    assert status == 200 and "not connected" in page and "T0STRAY" in page
    await post(served, *signed(mention("T0STRAY", "1763771100.000100")))
    assert await replies(fake, "1763771100.000100", 1, wait_s=0.5) == []


async def test_uninstall_deletes_the_installation(
        served: str, fake: FakeSlack, mongo_uri: str, database: str) -> None:
    fake.oauth_grants["code-gone"] = grant("T0GONE", "xoxb-gone")
    await install(served, "code-gone")
    assert await stored(mongo_uri, database, "T0GONE") is not None
    status, _ = await post(served, *signed({
        "type": "event_callback", "team_id": "T0GONE", "event_id": "EvUninstall",
        "event": {"type": "app_uninstalled"}}))
    assert status == 200
    deadline = time.monotonic() + 5
    while await stored(mongo_uri, database, "T0GONE") is not None:
        assert time.monotonic() < deadline, "installation not removed"
        await asyncio.sleep(0.05)


async def test_a_tenants_own_app_speaks_only_for_that_tenant(
        served: str, fake: FakeSlack) -> None:
    async def to_own(raw: bytes, headers: dict[str, str], tenant: str = "umbrella"
                     ) -> int:
        async with aiohttp.ClientSession() as session, session.post(
                f"{served}/slack/events/{tenant}", data=raw, headers=headers) as response:
            return response.status

    assert await to_own(*signed(mention("T0UMB", "1763771200.000100"), secret=OWN_SECRET)) \
        == 200
    [reply] = await replies(fake, "1763771200.000100", 1)
    assert reply.token == "xoxb-umbrella"
    # The shared app's secret does not sign for the tenant's own app, and the tenant's
    # own app cannot speak for another tenant's workspace.
    assert await to_own(*signed(mention("T0UMB", "1763771201.000100"))) == 401
    assert await to_own(*signed(mention("T0ACME", "1763771202.000100"),
                                secret=OWN_SECRET)) == 200
    assert await to_own(*signed(mention("T0ACME", "1763771203.000100")), "acme") == 404
    for ts in ("1763771201.000100", "1763771202.000100", "1763771203.000100"):
        assert await replies(fake, ts, 1, wait_s=0.3) == []


def file_share(user: str, ts: str, file_id: str, fake: FakeSlack, text: str = "",
               channel: str = "C0DOCS") -> dict[str, Any]:
    return {"type": "event_callback", "team_id": "T0HOOLI", "event_id": f"Ev{ts}",
            "event": {"type": "message", "subtype": "file_share", "user": user, "text": text,
                      "ts": ts, "channel": channel, "channel_type": "channel",
                      "files": [fake.file_object(file_id)]}}


async def test_files_shared_in_the_ingest_channel_by_an_admin_are_answered_from(
        served: str, fake: FakeSlack) -> None:
    fake.oauth_grants["code-hooli-2"] = grant("T0HOOLI", OAUTH_TOKEN)
    await install(served, "code-hooli-2")
    fake.files["F0HANDBOOK1"] = ("handbook.md", "text/markdown", HANDBOOK)
    await post(served, *signed(file_share("U0MALLORY", "1763771300.000100",
                                          "F0HANDBOOK1", fake)))
    refused = await _ephemeral(fake, "admins only")
    assert refused["user"] == "U0MALLORY"
    assert fake.downloads == []
    await post(served, *signed(file_share("U0ADMIN", "1763771301.000100",
                                          "F0HANDBOOK1", fake)))
    added = await _ephemeral(fake, "handbook.md", wait_s=60)
    assert added["user"] == "U0ADMIN" and "Added" in added["text"]
    assert fake.downloads == [("F0HANDBOOK1", OAUTH_TOKEN)]
    await post(served, *signed(mention("T0HOOLI", "1763771302.000100",
                                       "<@U0BOT> how many vacation days do we get?")))
    [answer] = await replies(fake, "1763771302.000100", 1)
    deadline = time.monotonic() + 10
    final = ""
    while "thirty-one" not in final and time.monotonic() < deadline:
        final = " ".join(str(c.payload) for c in fake.of("chat.update")
                         if c.payload.get("ts") == answer.payload.get("ts") or
                         c.payload.get("channel") == "C0GENERAL") + str(answer.payload)
        await asyncio.sleep(0.1)
    assert "thirty-one" in final and "handbook.md" in final


async def test_ingest_command_takes_a_slack_file_link(served: str, fake: FakeSlack) -> None:
    fake.files["F0PRICES22"] = ("prices.txt", "text/plain",
                                b"The enterprise plan costs 99 euros per seat.")
    fields = {"command": "/switchboard", "team_id": "T0HOOLI", "channel_id": "C0DOCS",
              "user_id": "U0ADMIN", "trigger_id": "trig-file",
              "text": "ingest https://hooli.slack.com/files/U0ADMIN/F0PRICES22/prices.txt",
              "response_url": f"{fake.url.removesuffix('/api/')}/responses/trig-file"}
    fake.oauth_grants["code-hooli-3"] = grant("T0HOOLI", OAUTH_TOKEN)
    await install(served, "code-hooli-3")
    await post(served, *signed_form(fields))
    [answer] = await responses_for(fake, "trig-file", wait_s=60)
    assert "prices.txt" in answer["text"] and "Added" in answer["text"]
    fields.update(trigger_id="trig-missing", text="ingest F0MISSING99",
                  response_url=f"{fake.url.removesuffix('/api/')}/responses/trig-missing")
    await post(served, *signed_form(fields))
    [missing] = await responses_for(fake, "trig-missing")
    assert "can't open the file" in missing["text"]
