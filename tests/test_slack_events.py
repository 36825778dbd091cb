"""Signed Slack requests against a real `switchboard serve`; the Web API is a local fake."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.fakes.slack_api import FakeSlack, start_fake_slack
from tests.servers import start_switchboard

ROOT = Path(__file__).resolve().parent.parent
SECRET = "slack-signing-secret-for-tests"


@pytest.fixture(scope="module")
async def slack_fake() -> AsyncIterator[FakeSlack]:
    fake = FakeSlack()
    runner = await start_fake_slack(fake)
    yield fake
    await runner.cleanup()


@pytest.fixture(scope="module")
def served(slack_fake: FakeSlack, tmp_path_factory: pytest.TempPathFactory
           ) -> Any:
    home = tmp_path_factory.mktemp("slack")
    tenants = home / "tenants"
    tenants.mkdir()
    for tenant_id, team, extra in (
            ("acme", "T0ACME", ""),
            ("globex", "T0GLOBEX", "[knowledge]\nallow_private_urls = true\n"),
            ("initech", "T0INIT", 'allowed_channels = ["C0OK"]\nmentions_only = true\n'
                                  "answer_dms = false\n")):
        (tenants / f"{tenant_id}.toml").write_text(
            f'id = "{tenant_id}"\nname = "{tenant_id.title()}"\n[slack]\nteam_ids = ["{team}"]\n'
            f'bot_token_env = "{tenant_id.upper()}_SLACK_BOT_TOKEN"\n{extra}')
    env = {"PATH": "/usr/bin:/bin", "SWITCHBOARD_TENANTS_DIR": str(tenants),
           "SWITCHBOARD_DATA_DIR": str(home / "var"), "SLACK_SIGNING_SECRET": SECRET,
           "SLACK_API_URL": slack_fake.url, "ACME_SLACK_BOT_TOKEN": "xoxb-acme",
           "GLOBEX_SLACK_BOT_TOKEN": "xoxb-globex", "INITECH_SLACK_BOT_TOKEN": "xoxb-initech",
           "HF_HUB_OFFLINE": "1"}
    base, process = start_switchboard(env, ROOT, home / "serve.log")
    yield base
    process.terminate()
    process.wait(timeout=30)


def signed(body: dict[str, Any], *, secret: str = SECRET, age_s: int = 0,
           retry: int | None = None) -> tuple[bytes, dict[str, str]]:
    raw = json.dumps(body).encode()
    stamp = str(int(time.time()) - age_s)
    digest = hmac.new(secret.encode(), f"v0:{stamp}:".encode() + raw, hashlib.sha256)
    headers = {"Content-Type": "application/json", "X-Slack-Request-Timestamp": stamp,
               "X-Slack-Signature": f"v0={digest.hexdigest()}"}
    if retry is not None:
        headers.update({"X-Slack-Retry-Num": str(retry), "X-Slack-Retry-Reason": "http_timeout"})
    return raw, headers


def mention(team: str, ts: str, text: str = "<@U0BOT> hello there") -> dict[str, Any]:
    return {"type": "event_callback", "team_id": team, "event_id": f"Ev{ts}",
            "event": {"type": "app_mention", "user": "U0ALICE", "text": text, "ts": ts,
                      "channel": "C0GENERAL"}}


async def post(base: str, raw: bytes, headers: dict[str, str]) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session, session.post(
            f"{base}/slack/events", data=raw, headers=headers) as response:
        return response.status, await response.text()


async def replies(fake: FakeSlack, thread_ts: str, count: int, wait_s: float = 10.0
                  ) -> list[Any]:
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        found = [c for c in fake.of("chat.postMessage") if c.payload.get("thread_ts") == thread_ts]
        if len(found) >= count:
            return found
        await asyncio.sleep(0.05)
    return [c for c in fake.of("chat.postMessage") if c.payload.get("thread_ts") == thread_ts]


async def test_url_verification_echoes_the_challenge(served: str) -> None:
    status, text = await post(served, *signed({"type": "url_verification",
                                               "challenge": "abc123", "token": "x"}))
    assert status == 200 and "abc123" in text


async def test_a_mention_is_answered_in_its_thread(served: str, slack_fake: FakeSlack) -> None:
    started = time.monotonic()
    status, _ = await post(served, *signed(mention("T0ACME", "1763770000.000100")))
    assert status == 200 and time.monotonic() - started < 3
    [reply] = await replies(slack_fake, "1763770000.000100", 1)
    assert reply.token == "xoxb-acme" and reply.payload["channel"] == "C0GENERAL"
    assert "knowledge" in reply.payload["text"].lower()


async def test_bad_signature_and_stale_timestamp_are_401(served: str,
                                                         slack_fake: FakeSlack) -> None:
    before = len(slack_fake.calls)
    assert (await post(served, *signed(mention("T0ACME", "1763770001.1"),
                                       secret="wrong")))[0] == 401
    assert (await post(served, *signed(mention("T0ACME", "1763770001.2"),
                                       age_s=600)))[0] == 401
    await asyncio.sleep(0.5)
    assert len(slack_fake.calls) == before


async def test_retry_storm_gets_exactly_one_reply(served: str, slack_fake: FakeSlack) -> None:
    body = mention("T0ACME", "1763770002.000100")
    await asyncio.gather(*(post(served, *signed(body, retry=n or None)) for n in range(4)))
    await replies(slack_fake, "1763770002.000100", 1)
    await asyncio.sleep(1.0)
    assert len(await replies(slack_fake, "1763770002.000100", 2, wait_s=0.1)) == 1


async def test_unknown_team_is_ignored_and_tenants_use_their_own_tokens(
        served: str, slack_fake: FakeSlack) -> None:
    await post(served, *signed(mention("T0NOBODY", "1763770003.000100")))
    await post(served, *signed(mention("T0GLOBEX", "1763770004.000100")))
    [globex] = await replies(slack_fake, "1763770004.000100", 1)
    assert globex.token == "xoxb-globex"
    assert await replies(slack_fake, "1763770003.000100", 1, wait_s=0.5) == []


def signed_form(fields: dict[str, str]) -> tuple[bytes, dict[str, str]]:
    from urllib.parse import urlencode
    raw = urlencode(fields).encode()
    stamp = str(int(time.time()))
    digest = hmac.new(SECRET.encode(), f"v0:{stamp}:".encode() + raw, hashlib.sha256)
    return raw, {"Content-Type": "application/x-www-form-urlencoded",
                 "X-Slack-Request-Timestamp": stamp,
                 "X-Slack-Signature": f"v0={digest.hexdigest()}"}


def command(fake: FakeSlack, text: str, user: str, trigger: str) -> dict[str, str]:
    base = fake.url.removesuffix("/api/")
    return {"command": "/switchboard", "text": text, "team_id": "T0ACME",
            "channel_id": "C0GENERAL", "user_id": user, "trigger_id": trigger,
            "response_url": f"{base}/responses/{trigger}"}


async def responses_for(fake: FakeSlack, trigger: str, wait_s: float = 10.0) -> list[Any]:
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        found = [r for r in fake.responses if r["path"].endswith(trigger)]
        if found:
            return found
        await asyncio.sleep(0.05)
    return []


async def test_slash_command_is_acked_then_answered_privately(
        served: str, slack_fake: FakeSlack) -> None:
    started = time.monotonic()
    status, text = await post(served, *signed_form(command(slack_fake, "help", "U0ALICE",
                                                           "trig1")))
    assert status == 200 and text == "" and time.monotonic() - started < 3
    [answer] = await responses_for(slack_fake, "trig1")
    assert answer["response_type"] == "ephemeral" and "/forget" in answer["text"]


async def test_admin_command_needs_a_workspace_admin(served: str,
                                                     slack_fake: FakeSlack) -> None:
    await post(served, *signed_form(command(slack_fake, "stats", "U0BOB", "trig2")))
    [refused] = await responses_for(slack_fake, "trig2")
    assert "admins only" in refused["text"] and refused["response_type"] == "ephemeral"
    slack_fake.admins.add("U0CAROL")
    await post(served, *signed_form(command(slack_fake, "stats", "U0CAROL", "trig3")))
    [stats] = await responses_for(slack_fake, "trig3")
    assert "turns:" in stats["text"]


def signed_payload(payload: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    return signed_form({"payload": json.dumps(payload)})


def click(action_id: str, value: str, thread_ts: str, action_ts: str) -> dict[str, Any]:
    return {"type": "block_actions", "team": {"id": "T0ACME"}, "user": {"id": "U0ALICE"},
            "channel": {"id": "C0GENERAL"}, "api_app_id": "A0SWITCH",
            "message": {"ts": "1763779999.000001", "thread_ts": thread_ts},
            "actions": [{"action_id": action_id, "value": value, "type": "button",
                         "action_ts": action_ts, "block_id": "b"}]}


async def test_feedback_click_is_stored_against_the_turn(served: str,
                                                         slack_fake: FakeSlack) -> None:
    await post(served, *signed(mention("T0ACME", "1763770100.000100")))
    await replies(slack_fake, "1763770100.000100", 1)
    deadline = time.monotonic() + 10
    turn_id = ""
    while not turn_id and time.monotonic() < deadline:
        for call in slack_fake.of("chat.update") + slack_fake.of("chat.postMessage"):
            for block in call.payload.get("blocks") or []:
                for element in block.get("elements", []):
                    if element.get("action_id") == "feedback_up" and \
                            call.payload.get("thread_ts", "1763770100.000100") and \
                            call.payload.get("channel") == "C0GENERAL":
                        turn_id = element["value"]
        await asyncio.sleep(0.05)
    assert turn_id
    status, _ = await post(served, *signed_payload(click("feedback_up", turn_id,
                                                         "1763770100.000100", "1.1")))
    assert status == 200
    confirmation = await _ephemeral(slack_fake, "Thanks for the feedback!")
    assert confirmation["user"] == "U0ALICE"
    await post(served, *signed_payload(click("feedback_down", "no-such-turn",
                                             "1763770100.000100", "1.2")))
    assert await _ephemeral(slack_fake, "couldn't find that answer")


async def test_follow_up_click_is_asked_in_the_thread(served: str,
                                                      slack_fake: FakeSlack) -> None:
    await post(served, *signed_payload(click("follow_up_0", "Tell me more about refunds",
                                             "1763770200.000100", "2.1")))
    assert await replies(slack_fake, "1763770200.000100", 1)


async def _ephemeral(fake: FakeSlack, text: str, wait_s: float = 10.0) -> dict[str, Any]:
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        for call in fake.of("chat.postEphemeral"):
            if text in str(call.payload.get("text", "")):
                return call.payload
        await asyncio.sleep(0.05)
    raise AssertionError(f"no ephemeral message containing {text!r}")


async def test_edited_question_updates_the_same_reply_and_deleted_one_removes_it(
        served: str, slack_fake: FakeSlack) -> None:
    ts = "1763770300.000100"
    await post(served, *signed(mention("T0ACME", ts, "<@U0BOT> first wording")))
    assert len(await replies(slack_fake, ts, 1)) == 1
    before = len([c for c in slack_fake.of("chat.update")])
    changed = {"type": "event_callback", "team_id": "T0ACME", "event_id": "EvEdit1",
               "event": {"type": "message", "subtype": "message_changed",
                         "channel": "C0GENERAL", "event_ts": "1763770301.000001",
                         "ts": "1763770301.000001",
                         "message": {"type": "message", "user": "U0ALICE", "ts": ts,
                                     "text": "<@U0BOT> second wording"},
                         "previous_message": {"user": "U0ALICE", "ts": ts}}}
    await post(served, *signed(changed))
    assert await eventually(lambda: len(slack_fake.of("chat.update")) > before)
    assert len(await replies(slack_fake, ts, 2, wait_s=0.3)) == 1  # edited, not re-posted
    edited_ts = slack_fake.of("chat.update")[-1].payload["ts"]
    removed = {"type": "event_callback", "team_id": "T0ACME", "event_id": "EvDel1",
               "event": {"type": "message", "subtype": "message_deleted",
                         "channel": "C0GENERAL", "deleted_ts": ts, "ts": "1763770302.1",
                         "previous_message": {"user": "U0ALICE", "ts": ts}}}
    await post(served, *signed(removed))
    assert await eventually(lambda: bool(slack_fake.of("chat.delete")))
    [deletion] = slack_fake.of("chat.delete")
    assert (deletion.payload["channel"], deletion.payload["ts"]) == ("C0GENERAL", edited_ts)


async def eventually(condition: Any, wait_s: float = 10.0) -> bool:
    for _ in range(int(wait_s / 0.05)):
        if condition():
            return True
        await asyncio.sleep(0.05)
    return bool(condition())


async def test_per_channel_settings_limit_where_the_bot_answers(
        served: str, slack_fake: FakeSlack) -> None:
    def event(ts: str, channel: str, **extra: Any) -> dict[str, Any]:
        body = mention("T0INIT", ts)
        body["event"].update(channel=channel, **extra)
        return body

    await post(served, *signed(event("1763770400.000100", "C0OTHER")))
    await post(served, *signed(event("1763770401.000100", "C0OK")))
    assert await replies(slack_fake, "1763770401.000100", 1)
    assert await replies(slack_fake, "1763770400.000100", 1, wait_s=0.5) == []
    follow_up = event("1763770402.000100", "C0OK", type="message",
                      thread_ts="1763770401.000100", text="and then?")
    await post(served, *signed(follow_up))
    dm = event("1763770403.000100", "D0DIRECT", type="message", channel_type="im",
               text="hello")
    await post(served, *signed(dm))
    await asyncio.sleep(0.5)
    assert len(await replies(slack_fake, "1763770401.000100", 2, wait_s=0.3)) == 1
    assert await replies(slack_fake, "1763770403.000100", 1, wait_s=0.3) == []


async def test_slow_command_is_acked_at_once_and_answered_later(
        served: str, slack_fake: FakeSlack) -> None:
    slack_fake.admins.add("U0ADMIN")
    doc = slack_fake.url.removesuffix("/api/") + "/slow-doc?seconds=4"
    fields = {**command(slack_fake, f"ingest {doc}", "U0ADMIN", "trig-slow"),
              "team_id": "T0GLOBEX"}
    started = time.monotonic()
    status, _ = await post(served, *signed_form(fields))
    assert status == 200 and time.monotonic() - started < 3
    [answer] = await responses_for(slack_fake, "trig-slow", wait_s=20)
    assert time.monotonic() - started >= 4
    assert answer["text"].startswith("Added:") and "slow-doc" in answer["text"]


async def test_message_shortcut_answers_the_chosen_message_in_its_thread(
        served: str, slack_fake: FakeSlack) -> None:
    status, text = await post(served, *signed_payload({
        "type": "message_action", "callback_id": "ask_switchboard", "trigger_id": "trig-sc",
        "team": {"id": "T0ACME"}, "user": {"id": "U0BOB"}, "channel": {"id": "C0GENERAL"},
        "response_url": "http://127.0.0.1:9/unused",
        "message": {"type": "message", "user": "U0ALICE", "ts": "1763770500.000100",
                    "text": "How do refunds work?"}}))
    assert status == 200 and text == ""
    [reply] = await replies(slack_fake, "1763770500.000100", 1)
    assert reply.payload["channel"] == "C0GENERAL"


async def test_a_command_from_an_unbound_workspace_is_told_what_to_do(
        served: str, slack_fake: FakeSlack) -> None:
    fields = {**command(slack_fake, "help", "U0ALICE", "trig-unbound"), "team_id": "T0NOBODY"}
    status, body = await post(served, *signed_form(fields))
    assert status == 200
    told = json.loads(body)
    assert told["response_type"] == "ephemeral"
    assert "not connected to a Switchboard tenant" in told["text"]
    assert "add team id T0NOBODY to a tenant file" in told["text"]
    assert "reinstall" not in told["text"].lower()
    assert await responses_for(slack_fake, "trig-unbound", wait_s=0.5) == []  # said once


async def test_the_ack_time_of_every_slack_request_is_measured(served: str,
                                                                slack_fake: FakeSlack) -> None:
    await post(served, *signed(mention("T0ACME", "1763770900.000100")))
    await post(served, *signed(mention("T0ACME", "1763770900.000200"), secret="wrong"))
    async with aiohttp.ClientSession() as session, session.get(f"{served}/metrics") as r:
        exposed = await r.text()
    counts = [line for line in exposed.splitlines()
              if line.startswith('switchboard_slack_ack_seconds_count{kind="event"}')]
    assert counts and float(counts[0].split()[-1]) >= 2  # refused ones too
