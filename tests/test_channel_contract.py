"""Every channel renders every turn event type.

One turn's events — started, streamed text, a tool called and returned, more text, the
final reply (with its sources and the tools used) — and one failed turn are given to
each channel's delivery, over the real client libraries and the platforms' stand-ins
where there is a platform. For each, what the user would see is read back from the
platform (or the stream, or the terminal) and checked: the text streamed, the tool
showed while it ran, the reply replaced it with the tools listed, the apology shows, and
the reply's receipt names the platform message.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import discord
import pytest
from discord.http import Route

from adapters.discord.delivery import ChannelDelivery
from adapters.slack.delivery import SlackThreadDelivery, web_client
from adapters.slack.interactions import ResponseUrlDelivery
from adapters.terminal.channel import TerminalDelivery
from adapters.widget.server import StreamDelivery
from core.messages import Author, Binding, InboundMessage
from core.replies import Citation, Reply, ToolUse
from core.turns.chain import Delivery
from core.turns.collecting import CollectingDelivery
from core.turns.events import (
    EVENT_TYPES,
    FinalReply,
    Receipt,
    TextDelta,
    ToolCalled,
    ToolReturned,
    TurnEvent,
    TurnFailed,
    TurnStarted,
)
from core.turns.streams import MemoryStreams
from tests.fakes.discord_api import FakeDiscord, start_fake_discord
from tests.fakes.slack_api import FakeSlack

MESSAGE = InboundMessage(Binding("memory", "acme"), "t1", Author("u1"), "How much?", "m1",
                         tenant_id="acme")
REPLY = Reply("Three boxes cost **57 euros** [1].", turn_id="turn-1",
              citations=(Citation(1, "Price list", "prices.md", "https://acme.example/p"),),
              tools=(ToolUse("calculator", "ok", "= 57"),))
APOLOGY = Reply("Sorry — something went wrong on my side.", kind="apology", turn_id="turn-2")
ANSWERED: list[TurnEvent] = [
    TurnStarted("turn-1", MESSAGE), TextDelta("turn-1", "Three boxes "),
    ToolCalled("turn-1", "call-1", "calculator", {"expression": "3 * 19"}, 1, "Calculating"),
    ToolReturned("turn-1", "call-1", "calculator", "ok", "= 57", 0.4, 1),
    TextDelta("turn-1", "cost 57 euros [1]."), FinalReply("turn-1", REPLY)]
FAILED: list[TurnEvent] = [TurnStarted("turn-2", MESSAGE), TextDelta("turn-2", "Let me"),
                           TurnFailed("turn-2", APOLOGY, "respond")]


def test_the_scripted_turns_cover_every_event_type() -> None:
    assert {type(e) for e in ANSWERED + FAILED} == set(EVENT_TYPES)


@dataclass(slots=True)
class Seen:
    """What the user saw, as the channel's own record has it."""

    shown: list[str]
    """Every rendering in order (posts, edits, frames, printed text)."""
    final: str
    """The text of the answer as it stands at the end, with what is shown under it."""


Harness = tuple[Callable[[], Awaitable[Delivery]], Callable[[], Seen], bool]
"""(a fresh delivery, what the user saw, whether the channel streams)."""


@pytest.fixture(scope="module")
async def discord_fake() -> AsyncIterator[FakeDiscord]:
    fake = FakeDiscord()
    fake.add_guild("123456789012", ["223456789012"])
    runner = await start_fake_discord(fake)
    yield fake
    await runner.cleanup()


def _slack(fake: FakeSlack) -> Harness:
    def seen() -> Seen:
        calls = [c for c in fake.calls if c.method in ("chat.postMessage", "chat.update")]
        shown = [str(c.payload.get("text", "")) for c in calls]
        last = calls[-1].payload
        blocks = last.get("blocks") or []
        under = [e.get("text", "") for b in blocks if b.get("type") == "context"
                 for e in b.get("elements", [])]
        return Seen(shown, " ".join([str(last.get("text", "")), *under]))

    async def make() -> Delivery:
        fake.calls.clear()
        return SlackThreadDelivery(web_client("xoxb-acme", fake.url), "C0GENERAL",
                                   "1764000000.000001", "U0ALICE", min_interval_s=0,
                                   placeholder_after_s=0)
    return make, seen, True


def _response_url() -> Harness:
    posted: list[dict[str, Any]] = []

    async def respond(**kwargs: Any) -> None:
        posted.append(kwargs)

    def seen() -> Seen:
        last = posted[-1]
        under = [e.get("text", "") for b in last.get("blocks") or []
                 if b.get("type") == "context" for e in b.get("elements", [])]
        return Seen([str(p["text"]) for p in posted], " ".join([last["text"], *under]))

    async def make() -> Delivery:
        posted.clear()
        return ResponseUrlDelivery(respond)
    return make, seen, False


def _discord(fake: FakeDiscord, client: discord.Client) -> Harness:
    channel_id = "223456789012"

    def seen() -> Seen:
        shown = [str(c.body.get("content", "")) for c in fake.calls
                 if c.path.startswith(f"/channels/{channel_id}/messages")
                 and c.method in ("POST", "PATCH")]
        final = [m for m in fake.messages.values() if m["channel_id"] == channel_id][-1]
        return Seen(shown, str(final.get("content", "")))

    async def make() -> Delivery:
        fake.calls.clear()
        fake.messages.clear()
        return ChannelDelivery(client.get_partial_messageable(int(channel_id)),
                               min_interval_s=0)
    return make, seen, True


def _widget() -> Harness:
    streams = MemoryStreams()
    frames: list[dict[str, Any]] = []

    def seen() -> Seen:
        shown = [str(f.get("text") or f.get("label") or f.get("type")) for f in frames]
        reply = frames[-1]
        tools = " ".join(f"{t['tool']} {t['summary']}" for t in reply.get("tools", []))
        return Seen(shown, f"{reply['text']} {tools}")

    async def make() -> Delivery:
        frames.clear()

        async def record() -> None:
            async for frame in streams.follow("acme", "visitor", 0):
                frames.append(frame)
        frames_task.append(asyncio.create_task(record()))
        await asyncio.sleep(0)
        return StreamDelivery(streams, "client-1", "acme", "visitor")
    frames_task: list[asyncio.Task[None]] = []
    return make, seen, True


def _terminal() -> Harness:
    out = io.StringIO()

    def seen() -> Seen:
        return Seen(out.getvalue().splitlines(), out.getvalue())

    async def make() -> Delivery:
        out.seek(0)
        out.truncate()
        return TerminalDelivery(out)
    return make, seen, True


def _memory() -> Harness:
    kept: list[CollectingDelivery] = []

    def seen() -> Seen:
        events = kept[-1].events
        shown = [e.text if isinstance(e, TextDelta) else e.label if isinstance(e, ToolCalled)
                 else type(e).__name__ for e in events]
        reply = kept[-1].replies[-1]
        return Seen(shown, reply.text + " " + " ".join(f"{t.tool} {t.summary}"
                                                       for t in reply.tools))

    async def make() -> Delivery:
        kept.append(CollectingDelivery())
        return kept[-1]
    return make, seen, True


CHANNELS = ["slack-thread", "slack-response-url", "discord-channel", "widget", "terminal",
            "memory"]


@pytest.fixture(params=CHANNELS)
async def harness(request: pytest.FixtureRequest, fake_slack: FakeSlack,
                  discord_fake: FakeDiscord) -> AsyncIterator[tuple[str, Harness]]:
    name = request.param
    if name == "discord-channel":
        previous, Route.BASE = Route.BASE, discord_fake.url.rstrip("/")
        client = discord.Client(intents=discord.Intents.none())
        try:
            await client.login("fake-bot-token")
            yield name, _discord(discord_fake, client)
        finally:
            await client.close()
            Route.BASE = previous
        return
    yield name, {"slack-thread": lambda: _slack(fake_slack), "slack-response-url": _response_url,
                 "widget": _widget, "terminal": _terminal, "memory": _memory}[name]()


async def _play(delivery: Delivery, events: list[TurnEvent]) -> list[Receipt]:
    receipts = [await delivery.deliver(event) for event in events]
    await asyncio.sleep(0.05)  # followers (the widget's tabs) take what was published
    return receipts


async def test_an_answered_turn_with_a_tool_call(harness: tuple[str, Harness]) -> None:
    name, (make, seen, streams) = harness
    receipts = await _play(await make(), ANSWERED)
    assert all(isinstance(r, Receipt) for r in receipts)
    saw = seen()
    assert "57 euros" in saw.final, saw
    assert "= 57" in saw.final, f"{name} does not list the tools used: {saw.final!r}"
    if streams:
        assert any("Three boxes" in s for s in saw.shown[:-1]), f"{name} did not stream"
        assert any("Calculating" in s for s in saw.shown), f"{name} hid the running tool"
    if name in ("slack-thread", "discord-channel"):
        assert receipts[-1].message_id, f"{name} gave no receipt for its reply"


async def test_a_failed_turn_shows_its_apology(harness: tuple[str, Harness]) -> None:
    name, (make, seen, _) = harness
    await _play(await make(), FAILED)
    assert "something went wrong" in seen().final, name
