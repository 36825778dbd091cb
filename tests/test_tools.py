"""Tool calling end to end: the real ``openai`` client parsing streamed ``tool_calls``
from the stand-in model, the bounded agent loop, the command executor, and each channel
showing tool activity natively.

Five scenarios — search then calculate, summarize the thread, a tool that fails, a tool
the user may not run, a loop that hits its step budget — each through the terminal
(in process) and the widget (a real ``switchboard serve`` over its WebSocket); Slack
gets the first and the fourth through the same served process. The model is scripted
(``tests/fakes/openai_server.py``) and does exactly what the script says.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import io
import json
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import aiohttp
import pytest

from adapters.terminal.channel import OPERATOR, TerminalChannel
from core.commands.registry import Command, CommandResult
from core.llm.openai_chat import OpenAIAnswerer
from core.sessions.models import ConversationKey
from tests.conftest import EngineKit, tenant
from tests.documents import write_corpus
from tests.fakes.openai_server import FakeOpenAI, Plan, start_fake_openai, step_of, tool_results
from tests.fakes.slack_api import FakeSlack
from tests.servers import start_switchboard
from tests.test_widget_transport import Client

ROOT = Path(__file__).resolve().parent.parent
ORIGIN = "https://shop.example"
PAGE = "http://shop.example"
"""The browser test's page: plain http, as the widget script is served over http here."""
SECRET = "slack-signing-secret-for-tool-tests"
TOOLS = {"allow": ["search_knowledge", "summarize_thread", "calculator", "extract_entities",
                   "ingest_url", "flaky", "forget"], "max_steps": 3}
SHOP = tenant("shop", tools=TOOLS, knowledge={"chunk_tokens": 120, "chunk_overlap": 20})


@pytest.fixture(scope="module")
async def model() -> AsyncIterator[FakeOpenAI]:
    fake = FakeOpenAI()
    _, runner = await start_fake_openai(fake)
    yield fake
    await runner.cleanup()


@pytest.fixture
def scripted(model: FakeOpenAI) -> Iterator[FakeOpenAI]:
    model.reset()
    yield model
    model.reset()


@pytest.fixture(scope="module")
async def served(model: FakeOpenAI, fake_slack: FakeSlack, mongo_uri: str,
                 tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    home = tmp_path_factory.mktemp("tools")
    tenants = home / "tenants"
    tenants.mkdir()
    (tenants / "shop.toml").write_text(
        'id = "shop"\nname = "Shop"\n[limits]\nuser_per_minute = 1000\n'
        'tenant_per_minute = 10000\n[knowledge]\nchunk_tokens = 120\nchunk_overlap = 20\n'
        '[slack]\nteam_ids = ["T0SHOP"]\nbot_token_env = "SHOP_SLACK_BOT_TOKEN"\n'
        '[widget]\npublic_key = "pk_shop_tools"\n'
        f'allowed_origins = ["{ORIGIN}", "{PAGE}"]\nip_per_minute = 1000\n[tools]\n'
        f'allow = {json.dumps(TOOLS["allow"])}\nmax_steps = 3\n')
    split = urlsplit(mongo_uri)
    env = {"PATH": "/usr/bin:/bin", "SWITCHBOARD_TENANTS_DIR": str(tenants),
           "SWITCHBOARD_DATA_DIR": str(home / "var"), "HF_HUB_OFFLINE": "1",
           "MONGODB_URI": f"{split.scheme}://{split.netloc}/tools_{uuid.uuid4().hex[:8]}",
           "OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": model.url,
           "SLACK_SIGNING_SECRET": SECRET, "SLACK_API_URL": fake_slack.url,
           "SHOP_SLACK_BOT_TOKEN": "xoxb-shop"}
    corpus = write_corpus(home / "kb")
    ingest = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bots", "ingest", "--tenant", "shop", str(corpus), env=env,
        cwd=ROOT, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    _, errors = await asyncio.wait_for(ingest.communicate(), 300)
    assert ingest.returncode == 0, errors.decode()
    base, process = await asyncio.to_thread(start_switchboard, env, ROOT, home / "serve.log")
    yield base
    process.terminate()
    await asyncio.to_thread(process.wait, 30)


# -- one turn through each channel, as the user would see it -------------------------

@dataclass(slots=True)
class Seen:
    text: str
    tools: list[tuple[str, str]]
    """(tool, outcome) of each call, as the final reply lists them."""
    live: list[str]
    """The tool activity the channel showed while the answer was being written."""
    sources: list[str] = field(default_factory=list)
    partial: bool = False


class Terminal:
    name = "terminal"

    def __init__(self, kit: EngineKit) -> None:
        self.kit = kit
        self.thread = f"t-{uuid.uuid4().hex[:8]}"

    async def ask(self, text: str, *, admin: bool = True) -> Seen:
        out = io.StringIO()
        channel = TerminalChannel(self.kit.engine, "shop", user=OPERATOR if admin else "visitor",
                                  thread=self.thread, out=out)
        await channel.send(text)
        printed = out.getvalue()
        [stored] = [m for m in await self.kit.sessions.transcript(
            ConversationKey("shop", "terminal", self.thread), 2) if m.role == "assistant"][-1:]
        trace = stored.trace or {"steps": []}
        calls = [(c["tool"], c["outcome"]) for s in trace["steps"] for c in s["calls"]]
        live = [line.strip() for line in printed.splitlines() if line.strip().startswith("⚙")]
        return Seen(stored.text, calls, live,
                    [c["source"] for c in stored.citations],
                    "best answer so far" in stored.text)


class Widget:
    name = "widget"

    def __init__(self, base: str, http: aiohttp.ClientSession) -> None:
        self.tab = Client(base, http, key="pk_shop_tools")
        self.connected = False

    async def ask(self, text: str, *, admin: bool = False) -> Seen:
        assert not admin, "widget visitors are not admins here"
        if not self.connected:
            await self.tab.connect()
            self.connected = True
        asked = await self.tab.say(text)
        events = await self.tab.events("reply", asked, wait_s=30)
        reply = events[-1]
        live = [f"{e['tool']}:{e['status']}" for e in events if e["type"] == "tool"]
        return Seen(reply["text"], [(t["tool"], t["outcome"]) for t in reply["tools"]], live,
                    [c["source"] for c in reply["citations"]], reply["partial"])


Channel = Terminal | Widget


@pytest.fixture(params=["terminal", "widget"])
async def channel(request: pytest.FixtureRequest, make_engine: Callable[..., Any],
                  knowledge: Any, model: FakeOpenAI, served: str) -> AsyncIterator[Channel]:
    if request.param == "terminal":
        await knowledge.ingestor.ingest(SHOP, [str(write_corpus(knowledge.root / "kb"))],
                                        knowledge.root)
        kit = await make_engine(SHOP, knowledge=knowledge,
                                answerer=OpenAIAnswerer("sk-test", model.url))
        kit.deps.commands.register(Command("flaky", "a tool that always breaks", _flaky,
                                           surface="tool", label="Trying the flaky tool"))
        yield Terminal(kit)
        return
    async with aiohttp.ClientSession() as http:
        yield Widget(served, http)


async def _flaky(ctx: Any, args: Any) -> CommandResult:
    raise RuntimeError("the flaky tool broke")


def by_step(*plans: Plan | Callable[[dict[str, Any]], Plan]) -> Any:
    """A script for questions that mention a tool; other questions get the echo."""
    def script(body: dict[str, Any], step: int) -> Plan | None:
        question = [m for m in body["messages"] if m["role"] == "user"][-1]["content"]
        if "please" not in question:
            return None
        plan = plans[min(step, len(plans)) - 1]
        return plan(body) if callable(plan) else plan
    return script


# -- the five scenarios --------------------------------------------------------------

async def test_search_then_calculate(channel: Channel, scripted: FakeOpenAI) -> None:
    def answer(body: dict[str, Any]) -> Plan:
        passages, hours = tool_results(body)
        assert "5 business days" in passages
        return Plan(f"Approved refunds are paid within 5 business days [1], "
                    f"that is {hours} hours.")
    scripted.script = by_step(
        Plan(calls=[("search_knowledge", {"query": "refund processing time"})]),
        Plan("Let me work that out.", calls=[("calculator", {"expression": "5 * 24"})]),
        answer)
    seen = await channel.ask("please: how many hours until my refund arrives?")
    assert "that is 120 hours" in seen.text and "Let me work that out." in seen.text
    assert seen.tools == [("search_knowledge", "ok"), ("calculator", "ok")]
    assert any(s.endswith("refunds.md") for s in seen.sources), seen.sources
    assert len(seen.live) >= 2  # the channel showed both calls as they ran
    offered = {t["function"]["name"] for t in scripted.requests[0]["tools"]}
    assert {"search_knowledge", "calculator"} <= offered
    assert "ingest_url" not in offered or channel.name == "terminal"  # admins only


async def test_summarize_a_thread(channel: Channel, scripted: FakeOpenAI) -> None:
    def summary(body: dict[str, Any]) -> Plan:
        [thread] = tool_results(body)
        return Plan("Summary: " + " / ".join(
            line.split(": ", 1)[1] for line in thread.splitlines()[1:] if ": " in line))
    scripted.script = by_step(Plan(calls=[("summarize_thread", {"limit": 10})]), summary)
    await channel.ask("Where is parcel 1234?")
    await channel.ask("And can it go to the office instead?")
    seen = await channel.ask("please summarize this thread")
    assert "Where is parcel 1234?" in seen.text and "office instead" in seen.text
    assert seen.tools == [("summarize_thread", "ok")]


async def test_a_tool_that_fails_goes_back_to_the_model(channel: Channel,
                                                        scripted: FakeOpenAI) -> None:
    broken: tuple[str, dict[str, Any] | str] = (
        ("flaky", {}) if channel.name == "terminal" else ("calculator", '{"expression": '))

    def recover(body: dict[str, Any]) -> Plan:
        [error] = tool_results(body)
        return Plan(f"The tool failed ({error[:40]}), but 2 + 2 is 4 anyway.")
    scripted.script = by_step(Plan(calls=[broken]), recover)
    seen = await channel.ask("please add 2 and 2")
    assert seen.text.startswith("The tool failed (error:") and "4 anyway" in seen.text
    assert seen.tools == [(broken[0], "error" if channel.name == "terminal" else "invalid")]


async def test_a_tool_the_user_may_not_run_is_refused(channel: Channel,
                                                      scripted: FakeOpenAI) -> None:
    def told(body: dict[str, Any]) -> Plan:
        return Plan("I was told: " + " | ".join(tool_results(body)))
    scripted.script = by_step(
        Plan(calls=[("ingest_url", {"url": "https://attacker.example/doc"}),
                    ("reload", {}), ("no_such_tool", {"x": 1})]), told)
    seen = await channel.ask("please ingest https://attacker.example/doc", admin=False)
    assert seen.tools == [("ingest_url", "refused"), ("reload", "unknown"),
                          ("no_such_tool", "unknown")]
    assert "admins only" in seen.text and "Unknown command" in seen.text
    offered = {t["function"]["name"] for t in scripted.requests[0]["tools"]}
    assert "ingest_url" not in offered and "reload" not in offered
    if isinstance(channel, Terminal):  # the refusal is audited with the tool's outcome
        records = await channel.kit.deps.audit.recent("shop", 10)
        assert any(r.command == "ingest_url" and r.outcome == "refused" and r.via == "tool"
                   for r in records)


async def test_a_loop_that_hits_its_step_budget_gives_the_best_answer_so_far(
        channel: Channel, scripted: FakeOpenAI) -> None:
    scripted.script = by_step(Plan(calls=[("calculator", {"expression": "6 * 7"})]))
    seen = await channel.ask("please keep calculating")
    assert seen.partial and "limit of 3 steps" in seen.text and "42" in seen.text
    assert seen.tools == [("calculator", "ok")] * 3
    assert sum(1 for r in scripted.requests if r.get("tools")) == 3


# -- Slack: the same loop, shown as a status line and a context block ----------------

def _signed(body: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    raw = json.dumps(body).encode()
    stamp = str(int(time.time()))
    digest = hmac.new(SECRET.encode(), f"v0:{stamp}:".encode() + raw, hashlib.sha256)
    return raw, {"Content-Type": "application/json", "X-Slack-Request-Timestamp": stamp,
                 "X-Slack-Signature": f"v0={digest.hexdigest()}"}


async def _slack_final(slack: FakeSlack, ts: str, text: str, wait_s: float = 30) -> Any:
    """The newest message in the thread of ``ts`` whose text contains ``text``."""
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        ours = {m["ts"] for m in slack.threads.get(("C0GENERAL", ts), [])}
        found = [c for c in slack.calls if c.method in ("chat.postMessage", "chat.update")
                 and (c.payload.get("thread_ts") == ts or c.payload.get("ts") in ours)
                 and text in str(c.payload.get("text", ""))]
        if found:
            return found[-1].payload
        await asyncio.sleep(0.05)
    raise AssertionError(f"no {text!r} in the Slack thread")


async def _slack_turn(base: str, slack: FakeSlack, ts: str, text: str) -> list[Any]:
    body = {"type": "event_callback", "team_id": "T0SHOP", "event_id": f"Ev{ts}",
            "event": {"type": "app_mention", "user": "U0ALICE", "text": f"<@U0BOT> {text}",
                      "ts": ts, "channel": "C0GENERAL"}}
    async with aiohttp.ClientSession() as http, http.post(
            f"{base}/slack/events", data=_signed(body)[0], headers=_signed(body)[1]) as r:
        assert r.status == 200
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        ours = {m["ts"] for m in slack.threads.get(("C0GENERAL", ts), [])}
        calls = [c for c in slack.calls if c.method in ("chat.postMessage", "chat.update")
                 and (c.payload.get("thread_ts") == ts or c.payload.get("ts") in ours)]
        final = [c for c in calls if c.payload.get("blocks")]
        if final:
            return calls
        await asyncio.sleep(0.05)
    raise AssertionError("no final reply in the Slack thread")


async def test_slack_shows_tools_as_a_status_line_and_a_context_block(
        served: str, fake_slack: FakeSlack, scripted: FakeOpenAI) -> None:
    scripted.script = by_step(
        Plan(calls=[("calculator", {"expression": "1200 * 0.15"})]),
        lambda body: Plan(f"15% of 1200 is {tool_results(body)[0]}."))
    calls = await _slack_turn(served, fake_slack, "1764000000.000100", "please what is 15% of 1200")
    texts = [str(c.payload.get("text", "")) for c in calls]
    assert any("Calculating…" in t for t in texts), texts  # the live status line
    final = [c for c in calls if c.payload.get("blocks")][-1].payload
    blocks = final["blocks"] if isinstance(final["blocks"], list) else json.loads(
        final["blocks"])
    assert "15% of 1200 is 180." in final["text"]
    context = [e["text"] for b in blocks if b["type"] == "context" for e in b["elements"]]
    assert any("`calculator` (= 180)" in t for t in context), context
    async with aiohttp.ClientSession() as http, http.get(f"{served}/metrics") as r:
        exposed = await r.text()  # the bootstrap composed the metrics stage
    assert 'switchboard_turn_events_total{type="ToolCalled"}' in exposed
    assert 'switchboard_tool_calls_total{outcome="ok",tenant="shop",tool="calculator"}' \
        in exposed


async def test_slack_refuses_an_admin_tool_for_an_ordinary_user(
        served: str, fake_slack: FakeSlack, scripted: FakeOpenAI) -> None:
    scripted.script = by_step(
        Plan(calls=[("ingest_url", {"url": "https://attacker.example/x"})]),
        lambda body: Plan("Told: " + tool_results(body)[0]))
    calls = await _slack_turn(served, fake_slack, "1764000000.000200", "please ingest it")
    final = [c for c in calls if c.payload.get("blocks")][-1].payload
    assert "admins only" in final["text"]
    assert step_of(scripted.requests[-1]) == 2


def _forget_when_told(body: dict[str, Any]) -> Plan:
    return Plan(calls=[("forget", {"scope": "me"})])


async def test_slack_a_proposed_change_runs_only_after_its_confirm_button(
        served: str, fake_slack: FakeSlack, scripted: FakeOpenAI) -> None:
    scripted.script = by_step(_forget_when_told, Plan("You can confirm it below."))
    ts = "1764000000.000300"
    await _slack_turn(served, fake_slack, ts, "please summarise the shipping page")
    final = await _slack_final(fake_slack, ts, "Needs your confirmation")
    blocks = final["blocks"] if isinstance(final["blocks"], list) else json.loads(
        final["blocks"])
    buttons = {e["action_id"]: e["value"] for b in blocks if b["type"] == "actions"
               for e in b["elements"]}
    assert buttons["confirm_yes"] == buttons["confirm_no"]
    click = {"type": "block_actions", "team": {"id": "T0SHOP"}, "user": {"id": "U0ALICE"},
             "channel": {"id": "C0GENERAL"}, "api_app_id": "A0SWITCH",
             "message": {"ts": final.get("ts", ts), "thread_ts": ts},
             "actions": [{"action_id": "confirm_yes", "value": buttons["confirm_yes"],
                          "type": "button", "action_ts": "9.1", "block_id": "b"}]}
    form = urlencode({"payload": json.dumps(click)}).encode()
    stamp = str(int(time.time()))
    digest = hmac.new(SECRET.encode(), f"v0:{stamp}:".encode() + form, hashlib.sha256)
    async with aiohttp.ClientSession() as http, http.post(
            f"{served}/slack/events", data=form, headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "X-Slack-Request-Timestamp": stamp,
                "X-Slack-Signature": f"v0={digest.hexdigest()}"}) as r:
        assert r.status == 200
    done = await _slack_final(fake_slack, ts, "Done: Forgetting messages")
    assert "I forgot everything you said" in done["text"]


async def test_the_widget_asks_before_a_change_and_a_cancel_changes_nothing(
        served: str, scripted: FakeOpenAI) -> None:
    scripted.script = by_step(_forget_when_told, Plan("You can confirm it below."))
    async with aiohttp.ClientSession() as http:
        tab = Client(served, http, key="pk_shop_tools")
        await tab.connect()
        asked = await tab.say("please what is the shipping policy?")
        reply = (await tab.events("reply", asked, wait_s=30))[-1]
        assert "Needs your confirmation" in reply["text"]
        assert reply["confirm"]["label"] == "Confirm"
        assert reply["tools"] == [{"tool": "forget", "outcome": "confirm",
                                   "summary": "waiting for your confirmation"}]
        assert tab.ws is not None
        forged = uuid.uuid4().hex[:12]
        await tab.ws.send_json({"type": "confirm", "id": "not-a-real-id-123", "decision": "yes",
                                "client_id": forged})
        assert "expired" in (await tab.events("reply", forged))[-1]["text"]
        cancel = uuid.uuid4().hex[:12]
        await tab.ws.send_json({"type": "confirm", "id": reply["confirm"]["id"],
                                "decision": "no", "client_id": cancel})
        cancelled = (await tab.events("reply", cancel))[-1]
        assert cancelled["text"].startswith("Cancelled — I did not do it: Forgetting messages")
        await tab.ws.send_json({"type": "confirm", "id": "bad id!", "decision": "yes",
                                "client_id": uuid.uuid4().hex[:12]})
        error = (await tab.events("error"))[-1]
        assert error["type"] == "error"  # an invalid frame gets a clear error, not silence


# -- the widget in a real browser: a chip per tool call -------------------------------

async def test_the_widget_shows_a_chip_per_tool_call_in_chromium(
        served: str, scripted: FakeOpenAI) -> None:
    from playwright.async_api import async_playwright, expect

    from tests.test_widget_browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS
    scripted.chunk_delay_s = 0.05  # slow enough to see the chip while it runs
    scripted.script = by_step(
        Plan(calls=[("calculator", {"expression": "19 * 3"})]),
        lambda body: Plan(f"That makes {tool_results(body)[0]} in all."))
    page_html = (f'<!doctype html><title>Shop</title><h1>Shop</h1>'
                 f'<script src="{served}/widget.js" data-key="pk_shop_tools" async></script>')
    async with async_playwright() as playwright:
        # The page is public and the server on loopback: Chromium's Private Network
        # Access rules would block that, as they would not in production (public server).
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=[
                *CHROMIUM_ARGS, "--disable-features=BlockInsecurePrivateNetworkRequests,"
                "PrivateNetworkAccessSendPreflights,PrivateNetworkAccessRespectPreflightResults,"
                "LocalNetworkAccessChecks"])
        page = await browser.new_page()
        await page.route(f"{PAGE}/", lambda route: route.fulfill(
            status=200, content_type="text/html", body=page_html))
        await page.goto(f"{PAGE}/")
        await page.locator(".launcher").click()
        await page.locator("#sb-input").fill("please what do 3 boxes of 19 cost")
        await page.keyboard.press("Enter")
        answer = page.locator(".msg.bot").last
        await expect(answer).to_contain_text("That makes 57 in all.", timeout=20000)
        chip = answer.locator(".tool")
        await expect(chip).to_have_text("Calculating — = 57")
        assert await chip.get_attribute("data-status") == "ok"
        ARTIFACTS.mkdir(exist_ok=True)
        await page.screenshot(path=str(ARTIFACTS / "widget-tools.png"))
        await page.reload()
        await page.locator(".launcher").click()
        await expect(page.locator(".msg.bot").last).to_contain_text("That makes 57")
        # a change the model proposes shows Confirm and Cancel; Cancel is asked as data
        scripted.script = by_step(_forget_when_told, Plan("You can confirm it below."))
        await page.locator("#sb-input").fill("please tell me about shipping")
        await page.keyboard.press("Enter")
        await expect(page.locator(".msg.bot").last).to_contain_text("Needs your confirmation",
                                                                   timeout=20000)
        proposal = page.locator(".msg.bot").nth(await page.locator(".msg.bot").count() - 1)
        await proposal.locator(".row.confirm button", has_text="Cancel").click()
        await expect(page.locator(".msg.bot").last).to_contain_text(
            "Cancelled — I did not do it", timeout=20000)
        assert await proposal.locator(".row.confirm button[disabled]").count() == 2
        await browser.close()
