"""Slack payloads in, Block Kit out: recorded payload shapes beside the adapter."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from adapters.slack.inbound import to_inbound
from adapters.slack.render import SECTION_LIMIT, render, split_text, to_mrkdwn
from core.messages import Binding
from core.replies import Citation, Reply, feedback_actions

PAYLOADS = Path(__file__).parent / "payloads"
AUTHORIZED = Binding("slack", "T0ACME")


def payload(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((PAYLOADS / f"{name}.json").read_text())
    return loaded


def test_a_mention_starts_a_thread_under_itself() -> None:
    message = to_inbound(payload("app_mention"), "U0BOT", AUTHORIZED, "acme")
    assert message is not None
    assert (message.binding.channel, message.binding.value) == ("slack", "T0ACME")
    assert message.tenant_id == "acme"


def test_the_body_team_fields_never_choose_the_binding() -> None:
    body = payload("app_mention")
    body["team_id"], body["event"]["team"] = "T0OTHER", "T0OTHER"
    message = to_inbound(body, "U0BOT", AUTHORIZED, "acme")
    assert message is not None
    assert (message.binding.value, message.tenant_id) == ("T0ACME", "acme")
    assert message.thread == "C0GENERAL:1763769600.000100"
    assert message.text == "how do refunds work?"
    assert message.platform_message_id == "C0GENERAL:1763769600.000100"


def test_a_thread_reply_continues_the_thread_and_keeps_files() -> None:
    message = to_inbound(payload("thread_reply"), "U0BOT", AUTHORIZED, "acme")
    assert message is not None and message.thread == "C0GENERAL:1763769600.000100"
    assert message.attachments[0].name == "policy.pdf"
    assert message.platform_message_id == "C0GENERAL:1763769700.000200"


def test_the_same_message_as_mention_and_message_event_has_one_id() -> None:
    mention = payload("app_mention")
    plain = json.loads(json.dumps(mention))
    plain["event"]["type"] = "message"
    plain["event_id"] = "Ev0OTHER"
    a = to_inbound(mention, "U0BOT", AUTHORIZED, "acme")
    b = to_inbound(plain, "U0BOT", AUTHORIZED, "acme")
    assert a is not None and b is not None
    assert a.platform_message_id == b.platform_message_id


def test_bots_edits_and_own_messages_are_not_questions() -> None:
    for change in ({"bot_id": "B1"}, {"subtype": "message_changed"}, {"user": "U0BOT"},
                   {"type": "reaction_added"}):
        body = payload("app_mention")
        body["event"].update(change)
        assert to_inbound(body, "U0BOT", AUTHORIZED, "acme") is None


def test_markdown_becomes_mrkdwn_but_code_is_left_alone() -> None:
    text = "# Title\n**bold** and *it* and [docs](https://x.example/a) <b>\n`a **b**`\n" \
           "```\n**not bold** <tag>\n```"
    assert to_mrkdwn(text) == ("*Title*\n*bold* and _it_ and <https://x.example/a|docs> "
                               "&lt;b&gt;\n`a **b**`\n```\n**not bold** <tag>\n```")


def test_long_answers_split_without_breaking_code_fences() -> None:
    code = "```\n" + "\n".join(f"line {i} " + "x" * 60 for i in range(120)) + "\n```"
    text = "Intro paragraph.\n\n" + code + "\n\nOutro."
    pieces = split_text(text)
    assert len(pieces) > 2 and all(len(p) <= SECTION_LIMIT for p in pieces)
    assert all(p.count("```") % 2 == 0 for p in pieces)
    assert "".join(pieces).count("line 119") == 1


def test_sources_and_buttons_render_on_the_last_message() -> None:
    reply = Reply("Refunds take 5 days [1].", citations=(
        Citation(1, "Refund policy > Processing", "docs/refunds.md", "https://acme.example/r"),
        Citation(2, "FAQ", "faq.md")), follow_ups=("Tell me more about Eligibility",),
        actions=feedback_actions("turn42"), turn_id="turn42")
    [message] = render(reply)
    kinds = [b["type"] for b in message.blocks]
    assert kinds == ["section", "context", "actions"]
    context = [e["text"] for e in message.blocks[1]["elements"]]
    assert context == ["[1] <https://acme.example/r|Refund policy &gt; Processing>",
                       "[2] FAQ (`faq.md`)"]
    ids = [e["action_id"] for e in message.blocks[2]["elements"]]
    assert ids == ["follow_up_0", "feedback_up", "feedback_down"]
    assert message.blocks[2]["elements"][1]["value"] == "turn42"
    assert message.text == "Refunds take 5 days [1]."


def test_a_huge_answer_becomes_several_messages_within_block_limits() -> None:
    text = "\n\n".join("para " + "y" * 2500 for _ in range(120))
    messages = render(Reply(text, actions=feedback_actions("t")))
    assert len(messages) == 3
    assert all(len(m.blocks) <= 50 for m in messages)
    assert messages[-1].blocks[-1]["type"] == "actions"


def test_a_malformed_ts_does_not_lose_the_message() -> None:
    message = to_inbound({"team_id": "T1", "event": {
        "type": "app_mention", "user": "U1", "text": "<@UBOT> hi", "ts": "not-a-number",
        "channel": "C1"}}, "UBOT", AUTHORIZED, "acme")
    assert message is not None and message.text == "hi"
