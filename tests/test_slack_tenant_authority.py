"""The tenant of a Slack request is decided by what authenticated it, never by the body.

A tenant that brings its own Slack app holds that app's signing secret, so it can sign
any body it likes. These tests sign randomized bodies whose team fields disagree —
``team_id``, ``team``/``team.id``, ``authorizations``, ``event.team``, ``user.team_id``,
``enterprise_id``, ``is_ext_shared_channel`` — with that tenant's secret, against a real
``switchboard serve``, and check that nothing is ever done as another tenant: no Web API
call with another tenant's token, no stored message under another tenant, no command
answered from another tenant, and another tenant's history survives "/forget me".
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
import uuid
from typing import Any
from urllib.parse import urlencode, urlsplit

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.stores.mongo_client import MongoConnection
from tests.fakes.slack_api import FakeSlack
from tests.servers import start_switchboard
from tests.test_slack_events import ROOT, SECRET, mention, post, replies, signed

OWN_SECRET = "umbrella-own-app-secret-for-authority-tests"
TEAMS = ("T0UMB", "T0ACME", "T0NOBODY", "E0ACME", "E0UMB", "")
_serial = itertools.count(1)


@pytest.fixture(scope="module")
def database(mongo_uri: str) -> str:
    return f"slack_authority_{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def served(fake_slack: FakeSlack, mongo_uri: str, database: str,
           tmp_path_factory: pytest.TempPathFactory) -> Any:
    home = tmp_path_factory.mktemp("slack-authority")
    tenants = home / "tenants"
    tenants.mkdir()
    (tenants / "umbrella.toml").write_text(
        'id = "umbrella"\nname = "Umbrella"\n[admins]\nslack = ["U0ALICE"]\n'
        '[limits]\nuser_per_minute = 1000\ntenant_per_minute = 10000\n'
        '[slack]\nteam_ids = ["T0UMB"]\nbot_token_env = "UMBRELLA_SLACK_BOT_TOKEN"\n'
        'signing_secret_env = "UMBRELLA_SLACK_SIGNING_SECRET"\n')
    (tenants / "acme.toml").write_text(
        'id = "acme"\nname = "Acme"\n[admins]\nslack = ["U0ALICE"]\n'
        '[slack]\nteam_ids = ["T0ACME", "E0ACME"]\nbot_token_env = "ACME_SLACK_BOT_TOKEN"\n')
    split = urlsplit(mongo_uri)
    env = {"PATH": "/usr/bin:/bin", "SWITCHBOARD_TENANTS_DIR": str(tenants),
           "SWITCHBOARD_DATA_DIR": str(home / "var"), "SLACK_SIGNING_SECRET": SECRET,
           "SLACK_API_URL": fake_slack.url, "MONGODB_URI": f"{split.scheme}://{split.netloc}/{database}",
           "ACME_SLACK_BOT_TOKEN": "xoxb-acme", "UMBRELLA_SLACK_BOT_TOKEN": "xoxb-umbrella",
           "UMBRELLA_SLACK_SIGNING_SECRET": OWN_SECRET, "HF_HUB_OFFLINE": "1"}
    base, process = start_switchboard(env, ROOT, home / "serve.log")
    yield base
    process.terminate()
    process.wait(timeout=30)


def _team_field(style: str, team: str) -> Any:
    return {"absent": None, "string": team, "object": {"id": team}}[style]


@st.composite
def disagreeing_bodies(draw: st.DrawFn, fake_slack: FakeSlack) -> tuple[str, bytes, str]:
    """A body of a random kind whose team fields name random, disagreeing workspaces.

    Returns (kind, raw body, content type).
    """
    kind = draw(st.sampled_from(["mention", "dm", "command", "action", "shortcut"]))
    team = lambda: draw(st.sampled_from(TEAMS))  # noqa: E731
    n = next(_serial)
    ts = f"1763800{n:03d}.{n:06d}"
    user = draw(st.sampled_from(["U0ALICE", "U0BOB"]))
    if kind in ("mention", "dm"):
        event: dict[str, Any] = {
            "type": "app_mention" if kind == "mention" else "message", "user": user,
            "text": "<@U0BOT> what do you know?", "ts": ts,
            "channel": "C0SHARED" if kind == "mention" else "D0DIRECT",
            **({"channel_type": "im"} if kind == "dm" else {})}
        for name in ("team", "user_team", "source_team"):
            if draw(st.booleans()):
                event[name] = team()
        body: dict[str, Any] = {"type": "event_callback", "event_id": f"Ev{n}", "event": event}
        if draw(st.booleans()):
            body["team_id"] = team()
        if draw(st.booleans()):
            body["enterprise_id"] = team()
        if draw(st.booleans()):
            body["authorizations"] = [{"team_id": team(), "enterprise_id": team() or None,
                                       "user_id": "U0BOT", "is_bot": True,
                                       "is_enterprise_install": draw(st.booleans())}]
        if draw(st.booleans()):
            body["is_ext_shared_channel"] = True
        return kind, json.dumps(body).encode(), "application/json"
    if kind == "command":
        fields = {"command": "/switchboard",
                  "text": draw(st.sampled_from(["whoami", "forget me", "stats", "sources"])),
                  "team_id": team(), "enterprise_id": team(), "channel_id": "C0SHARED",
                  "user_id": user, "trigger_id": f"auth{n}",
                  "response_url": f"{fake_slack.url.removesuffix('/api/')}/responses/auth{n}"}
        return kind, urlencode(fields).encode(), "application/x-www-form-urlencoded"
    payload: dict[str, Any] = {
        "type": "block_actions" if kind == "action" else "message_action",
        "user": {"id": user, "team_id": team()}, "channel": {"id": "C0SHARED"},
        "trigger_id": f"auth{n}", "api_app_id": "A0UMB"}
    style = draw(st.sampled_from(["absent", "string", "object"]))
    if (value := _team_field(style, team())) is not None:
        payload["team"] = value
    if draw(st.booleans()):
        payload["enterprise"] = {"id": team()}
    if kind == "action":
        payload["message"] = {"ts": ts, "thread_ts": ts}
        payload["actions"] = [{"action_id": "follow_up_0", "value": "Tell me more",
                               "type": "button", "action_ts": ts, "block_id": "b"}]
    else:
        payload["callback_id"] = "ask_switchboard"
        payload["message"] = {"ts": ts, "text": "what do you know?", "user": user}
    return kind, urlencode({"payload": json.dumps(payload)}).encode(), \
        "application/x-www-form-urlencoded"


def _sign(raw: bytes, content_type: str, secret: str) -> dict[str, str]:
    import hashlib
    import hmac
    stamp = str(int(time.time()))
    digest = hmac.new(secret.encode(), f"v0:{stamp}:".encode() + raw, hashlib.sha256)
    return {"Content-Type": content_type, "X-Slack-Request-Timestamp": stamp,
            "X-Slack-Signature": f"v0={digest.hexdigest()}"}


async def _stored_tenants(mongo_uri: str, database: str) -> dict[str, int]:
    connection = MongoConnection(mongo_uri, database=database)
    try:
        counts: dict[str, int] = {}
        async for doc in connection.db["messages"].find({}, {"tenant": 1, "thread": 1}):
            counts[doc["tenant"]] = counts.get(doc["tenant"], 0) + 1
        return counts
    finally:
        await connection.close()


async def test_randomized_bodies_signed_by_one_tenants_app_never_act_for_another(
        served: str, fake_slack: FakeSlack, mongo_uri: str, database: str) -> None:
    # Acme's own history, through the shared app, which a forged /forget must not touch.
    await post(served, *signed(mention("T0ACME", "1763799999.000001")))
    assert len(await replies(fake_slack, "1763799999.000001", 1)) == 1
    deadline = time.monotonic() + 10
    while (await _stored_tenants(mongo_uri, database)).get("acme", 0) < 2:
        assert time.monotonic() < deadline, "acme's turn was not stored"
        await asyncio.sleep(0.1)
    acme_before = (await _stored_tenants(mongo_uri, database))["acme"]
    calls_before = len(fake_slack.calls)
    bodies: list[tuple[str, bytes, str]] = []

    @settings(max_examples=80, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(disagreeing_bodies(fake_slack))
    def collect(example: tuple[str, bytes, str]) -> None:
        bodies.append(example)

    collect()
    sent: list[str] = []
    async with aiohttp.ClientSession() as session:
        for kind, raw, content_type in bodies:
            async with session.post(f"{served}/slack/events/umbrella", data=raw,
                                    headers=_sign(raw, content_type, OWN_SECRET)) as answer:
                # 200, or bolt's 404 for a body no listener handles; never a 5xx or 401.
                assert answer.status in (200, 404), await answer.text()
            sent.append(kind)

    assert len(sent) >= 60
    await asyncio.sleep(2.0)  # let acked work finish
    acted = fake_slack.calls[calls_before:]
    assert acted, "no request was acted on at all: the test would prove nothing"
    foreign = [c for c in acted if c.token and c.token != "xoxb-umbrella"]
    assert foreign == [], f"acted with another tenant's token: {foreign[:3]}"
    answered = [r for r in fake_slack.responses if "/responses/auth" in r["path"]]
    assert all("acme" not in r.get("text", "").lower() for r in answered), answered
    stored = await _stored_tenants(mongo_uri, database)
    assert set(stored) <= {"acme", "umbrella"}
    assert stored["acme"] == acme_before, "a forged request changed another tenant's history"


async def test_a_forged_team_id_in_an_authorized_body_stays_with_the_signer(
        served: str, fake_slack: FakeSlack, mongo_uri: str, database: str) -> None:
    """The exact attack the probe found: umbrella's app, umbrella's workspace authorized,
    acme named in ``team_id``, ``event.team`` and ``user.team_id``."""
    ts = "1763798888.000001"
    body = {"type": "event_callback", "team_id": "T0ACME", "event_id": "EvForged",
            "authorizations": [{"team_id": "T0UMB", "user_id": "U0BOT", "is_bot": True}],
            "event": {"type": "app_mention", "user": "U0CAROL", "team": "T0ACME",
                      "text": "<@U0BOT> hello", "ts": ts, "channel": "C0X"}}
    raw = json.dumps(body).encode()
    async with aiohttp.ClientSession() as session, session.post(
            f"{served}/slack/events/umbrella", data=raw,
            headers=_sign(raw, "application/json", OWN_SECRET)) as answer:
        assert answer.status == 200
    [reply] = await replies(fake_slack, ts, 1)
    assert reply.token == "xoxb-umbrella"
    connection = MongoConnection(mongo_uri, database=database)
    try:
        deadline = time.monotonic() + 10
        while not (owners := await connection.db["messages"].distinct(
                "tenant", {"thread": f"C0X:{ts}"})):
            assert time.monotonic() < deadline, "the turn was not stored"
            await asyncio.sleep(0.1)
    finally:
        await connection.close()
    assert owners == ["umbrella"]


async def test_slack_connect_people_from_other_orgs_are_not_answered_by_default(
        served: str, fake_slack: FakeSlack) -> None:
    async def shared_mention(ts: str, user_team: str) -> None:
        body = {"type": "event_callback", "team_id": "T0UMB", "event_id": f"Ev{ts}",
                "is_ext_shared_channel": True,
                "authorizations": [{"team_id": "T0UMB", "user_id": "U0BOT", "is_bot": True}],
                "event": {"type": "app_mention", "user": "U0GUEST", "user_team": user_team,
                          "team": user_team, "text": "<@U0BOT> hi", "ts": ts,
                          "channel": "C0CONNECT"}}
        raw = json.dumps(body).encode()
        async with aiohttp.ClientSession() as session, session.post(
                f"{served}/slack/events/umbrella", data=raw,
                headers=_sign(raw, "application/json", OWN_SECRET)) as answer:
            assert answer.status == 200

    await shared_mention("1763797777.000001", "T0OTHERORG")
    await shared_mention("1763797777.000002", "T0UMB")
    assert len(await replies(fake_slack, "1763797777.000002", 1)) == 1
    assert await replies(fake_slack, "1763797777.000001", 1, wait_s=0.5) == []
