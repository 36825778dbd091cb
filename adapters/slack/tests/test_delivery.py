"""Replies reach a Slack thread through the real slack_sdk client and a local Web API."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator

import pytest
from slack_sdk.errors import SlackApiError

from adapters.slack.delivery import SlackThreadDelivery, web_client
from core.replies import Citation, Reply, feedback_actions
from tests.fakes.slack_api import FakeSlack, start_fake_slack


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    fake = FakeSlack()
    runner = await start_fake_slack(fake)
    yield fake
    await runner.cleanup()


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def sink(slack: FakeSlack, clock: Clock | None = None) -> SlackThreadDelivery:
    return SlackThreadDelivery(web_client("xoxb-acme", slack.url), "C0GENERAL",
                           "1763769600.000100", "U0ALICE", min_interval_s=1.0,
                           clock=clock or time.monotonic)


async def test_streamed_answer_updates_a_placeholder_at_most_once_a_second(
        slack: FakeSlack) -> None:
    clock = Clock()
    out = sink(slack, clock)
    for n, piece in enumerate(["Refunds ", "take ", "five ", "business ", "days."]):
        clock.now = n * 0.4
        await out.delta(piece)
    reply = Reply("Refunds take five business days [1].", turn_id="t1",
                  citations=(Citation(1, "Refunds", "refunds.md", "https://acme.example/r"),),
                  actions=feedback_actions("t1"))
    await out.finish(reply)
    posts, updates = slack.of("chat.postMessage"), slack.of("chat.update")
    assert len(posts) == 1 and posts[0].payload["thread_ts"] == "1763769600.000100"
    assert posts[0].token == "xoxb-acme"
    # Slack never previews a link from an answer (a preview fetch would carry data out)
    assert posts[0].payload["unfurl_links"] in (False, "false", "0")
    assert posts[0].payload["unfurl_media"] in (False, "false", "0")
    assert [u.payload["text"] for u in updates[:-1]] == ["Refunds take five business ▍"]
    final = updates[-1].payload
    assert final["ts"] == out.posted[0] and final["text"].startswith("Refunds take five")
    assert [b["type"] for b in final["blocks"]] == ["section", "context", "actions"]


async def test_long_answers_continue_in_further_thread_messages(slack: FakeSlack) -> None:
    out = sink(slack)
    await out.finish(Reply("\n\n".join("para " + "z" * 2500 for _ in range(60))))
    posts = slack.of("chat.postMessage")
    assert len(posts) == 2 and all(p.payload["thread_ts"] == "1763769600.000100"
                                   for p in posts)


async def test_rate_limited_post_is_retried_after_retry_after(slack: FakeSlack) -> None:
    slack.rate_limited["chat.postMessage"] = 1
    started = time.monotonic()
    await sink(slack).finish(Reply("hello"))
    assert time.monotonic() - started >= 1.0
    assert len(slack.of("chat.postMessage")) == 2


async def test_ephemeral_replies_go_to_the_asker_only(slack: FakeSlack) -> None:
    await sink(slack).finish(Reply("Only you can see this.", ephemeral=True))
    [call] = slack.of("chat.postEphemeral")
    assert call.payload["user"] == "U0ALICE" and slack.of("chat.postMessage") == []


async def test_not_in_channel_is_logged_not_raised(slack: FakeSlack,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    slack.errors["chat.postMessage"] = "not_in_channel"
    with caplog.at_level(logging.WARNING, logger="switchboard.slack"):
        await sink(slack).finish(Reply("hello"))
    assert "not_in_channel" in caplog.text


async def test_a_slow_answer_shows_a_working_placeholder_that_the_answer_replaces(
        slack: FakeSlack) -> None:
    out = SlackThreadDelivery(web_client("xoxb-acme", slack.url), "C0GENERAL",
                          "1763769600.000100", "U0ALICE", placeholder_after_s=0.05)
    await out.working()
    await asyncio.sleep(0.3)
    [placeholder] = slack.of("chat.postMessage")
    assert "Working" in placeholder.payload["text"]
    await out.delta("Here it is")
    await out.finish(Reply("Here it is.", turn_id="t1"))
    assert len(slack.of("chat.postMessage")) == 1
    assert slack.of("chat.update")[-1].payload["text"] == "Here it is."


async def test_a_fast_answer_posts_no_placeholder(slack: FakeSlack) -> None:
    out = SlackThreadDelivery(web_client("xoxb-acme", slack.url), "C0GENERAL",
                          "1763769600.000100", "U0ALICE", placeholder_after_s=0.2)
    await out.working()
    await out.finish(Reply("Quick.", turn_id="t1"))
    await asyncio.sleep(0.4)
    assert [c.payload["text"] for c in slack.of("chat.postMessage")] == ["Quick."]


async def test_a_private_reply_after_the_placeholder_removes_it(slack: FakeSlack) -> None:
    out = SlackThreadDelivery(web_client("xoxb-acme", slack.url), "C0GENERAL",
                          "1763769600.000100", "U0ALICE", placeholder_after_s=0.05)
    await out.working()
    await asyncio.sleep(0.3)
    await out.finish(Reply("Busy, try again.", kind="apology", ephemeral=True))
    assert len(slack.of("chat.delete")) == 1
    assert slack.of("chat.postEphemeral")[0].payload["text"] == "Busy, try again."


def thread_messages(slack: FakeSlack) -> list[dict[str, object]]:
    return slack.threads.get(("C0GENERAL", "1763769600.000100"), [])


async def test_a_post_that_slack_made_before_answering_500_is_not_made_twice(
        slack: FakeSlack) -> None:
    slack.fail_after_posting = 1
    out = sink(slack)
    await out.finish(Reply("Refunds take five days.", turn_id="t1"))
    assert [m["text"] for m in thread_messages(slack)] == ["Refunds take five days."]
    assert out.delivered_id == thread_messages(slack)[0]["ts"]


async def test_a_post_that_failed_before_slack_made_it_is_made_once(
        slack: FakeSlack) -> None:
    slack.errors["chat.postMessage"] = "internal_error"  # not transient: no retry at all
    out = sink(slack)
    with pytest.raises(SlackApiError):
        await out.finish(Reply("Once.", turn_id="t1"))
    assert thread_messages(slack) == []


async def test_a_sink_rebuilt_after_a_crash_finishes_its_predecessors_message(
        slack: FakeSlack) -> None:
    first = sink(slack)
    await first.delta("Refunds take")  # the process dies here
    rebuilt = SlackThreadDelivery(web_client("xoxb-acme", slack.url), "C0GENERAL",
                              "1763769600.000100", "U0ALICE", address=dict(first.address),
                              resume_existing=True)
    await rebuilt.finish(Reply("Refunds take five days.", turn_id="t1"))
    [message] = thread_messages(slack)
    assert rebuilt.delivered_id == message["ts"] == first.delivered_id
    assert slack.of("chat.update")[-1].payload["text"] == "Refunds take five days."
