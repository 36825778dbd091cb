"""The widget transport against a real `switchboard serve`, spoken by a plain aiohttp
client: origins, identities, history, resume after a cut, limits, the SSE fallback."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest

from tests.fakes.openai_server import FakeOpenAI, start_fake_openai
from tests.servers import start_switchboard

ROOT = Path(__file__).resolve().parent.parent
ORIGIN = "https://shop.example"
WIDGET_SECRET = "shop-widget-secret-for-tests"


@pytest.fixture(scope="module")
async def llm() -> AsyncIterator[FakeOpenAI]:
    fake = FakeOpenAI()
    _, runner = await start_fake_openai(fake)
    yield fake
    await runner.cleanup()


LOGS: dict[str, Path] = {}


@pytest.fixture(scope="module")
def served(llm: FakeOpenAI, mongo_uri: str, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[str]:
    home = tmp_path_factory.mktemp("widget")
    tenants = home / "tenants"
    tenants.mkdir()
    (tenants / "shop.toml").write_text(
        'id = "shop"\nname = "Shop"\n[limits]\nuser_per_minute = 1000\n'
        'tenant_per_minute = 10000\n[admins]\nwidget = ["admin-1"]\n[widget]\n'
        'public_key = "pk_shop_test"\nsecret_env = "SHOP_WIDGET_SECRET"\n'
        f'allowed_origins = ["{ORIGIN}"]\nip_per_minute = 40\nmax_message_chars = 500\n')
    (tenants / "other.toml").write_text(
        'id = "other"\nname = "Other"\n[widget]\npublic_key = "pk_other_test"\n'
        'allowed_origins = ["https://other.example"]\n')
    split = urlsplit(mongo_uri)
    env = {"PATH": "/usr/bin:/bin", "SWITCHBOARD_TENANTS_DIR": str(tenants),
           "SWITCHBOARD_DATA_DIR": str(home / "var"), "HF_HUB_OFFLINE": "1",
           "MONGODB_URI": f"{split.scheme}://{split.netloc}/widget_{uuid.uuid4().hex[:8]}",
           "OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": llm.url,
           "SHOP_WIDGET_SECRET": WIDGET_SECRET}
    base, process = start_switchboard(env, ROOT, home / "serve.log")
    LOGS[base] = home / "serve.log"
    yield base
    process.terminate()
    process.wait(timeout=30)


class Client:
    """One browser tab's worth of protocol."""

    def __init__(self, base: str, session: aiohttp.ClientSession, key: str = "pk_shop_test",
                 origin: str = ORIGIN) -> None:
        self.url = f"{base.replace('http', 'ws', 1)}/widget/v1/ws?key={key}"
        self.session = session
        self.origin = origin
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.last_seq: int | None = None
        self.token = ""
        self.welcome: dict[str, Any] = {}

    async def connect(self, **hello: Any) -> dict[str, Any]:
        self.ws = await self.session.ws_connect(self.url, headers={"Origin": self.origin})
        await self.ws.send_json({"type": "hello", "token": self.token, "after": self.last_seq,
                                 **hello})
        first = await self.ws.receive_json(timeout=10)
        if first["type"] == "welcome":
            self.welcome = first
            self.token = first["token"]
            if self.last_seq is None:
                self.last_seq = first["seq"]
        return first

    async def say(self, text: str, client_id: str | None = None) -> str:
        client_id = client_id or uuid.uuid4().hex[:12]
        assert self.ws is not None
        await self.ws.send_json({"type": "message", "text": text, "client_id": client_id})
        return client_id

    async def events(self, until: str, client_id: str = "", wait_s: float = 15
                     ) -> list[dict[str, Any]]:
        assert self.ws is not None
        seen = []
        while True:
            event = await self.ws.receive_json(timeout=wait_s)
            if "seq" in event:
                assert self.last_seq is None or event["seq"] > self.last_seq, "event repeated"
                self.last_seq = event["seq"]
            seen.append(event)
            if event["type"] == until and (not client_id or event.get("client_id") == client_id):
                return seen


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def test_a_visitor_chats_and_gets_the_history_back(served: str,
                                                         http: aiohttp.ClientSession) -> None:
    tab = Client(served, http)
    welcome = await tab.connect()
    assert welcome["type"] == "welcome" and welcome["history"] == []
    assert welcome["config"]["max_message_chars"] == 500
    asked = await tab.say("where is my parcel?")
    events = await tab.events("reply", asked)
    kinds = [e["type"] for e in events]
    assert kinds[:2] == ["message", "typing"] and "delta" in kinds
    reply = events[-1]
    assert "where is my parcel?" in reply["text"] and reply["turn_id"]
    deltas = "".join(e["text"] for e in events if e["type"] == "delta")
    assert deltas == reply["text"]
    # A new page load with the kept token: same conversation, history restored.
    again = Client(served, http)
    again.token = tab.token
    restored = await again.connect()
    assert [m["role"] for m in restored["history"]] == ["user", "assistant"]
    assert restored["history"][1]["client_id"] == asked


async def test_feedback_and_slash_commands_go_through_the_engine(
        served: str, http: aiohttp.ClientSession) -> None:
    tab = Client(served, http)
    await tab.connect()
    asked = await tab.say("rate this answer")
    reply = (await tab.events("reply", asked))[-1]
    assert tab.ws is not None
    await tab.ws.send_json({"type": "feedback", "turn_id": reply["turn_id"], "rating": "up"})
    saved = (await tab.events("feedback"))[-1]
    assert saved["stored"] is True and saved["turn_id"] == reply["turn_id"]
    await tab.ws.send_json({"type": "feedback", "turn_id": "not-a-turn", "rating": "down"})
    assert (await tab.events("feedback"))[-1]["stored"] is False
    helped = await tab.say("/help")
    help_reply = (await tab.events("reply", helped))[-1]
    assert help_reply["kind"] == "command" and "/forget" in help_reply["text"]
    stats = await tab.say("/stats")
    refused = (await tab.events("reply", stats))[-1]
    assert "admin" in refused["text"].lower()


async def test_an_identified_user_is_proven_by_hmac(served: str,
                                                    http: aiohttp.ClientSession) -> None:
    good = hmac.new(WIDGET_SECRET.encode(), b"admin-1", hashlib.sha256).hexdigest()
    tab = Client(served, http)
    welcome = await tab.connect(user_id="admin-1", user_hmac=good)
    assert welcome["type"] == "welcome" and welcome["identified"] is True
    stats = await tab.say("/stats")
    assert "turns" in (await tab.events("reply", stats))[-1]["text"]
    await tab.events("reply", await tab.say("asked on my phone"))
    # Another device of the same user sees the same conversation.
    laptop = Client(served, http)
    other = await laptop.connect(user_id="admin-1", user_hmac=good)
    assert any(m["text"] == "asked on my phone" for m in other["history"])

    forged = Client(served, http)
    refused = await forged.connect(user_id="admin-1", user_hmac="00" * 32)
    assert refused == {"type": "error", "code": "identity",
                       "message": "the user signature does not match"}
    assert forged.ws is not None
    await forged.ws.receive(timeout=5)
    assert forged.ws.closed and forged.ws.close_code == 4401


async def test_wrong_origin_and_unknown_key_are_refused(served: str,
                                                        http: aiohttp.ClientSession) -> None:
    for key, origin, status in (("pk_shop_test", "https://evil.example", 403),
                                ("pk_shop_test", "", 403),
                                ("pk_unknown_key", ORIGIN, 404),
                                ("pk_other_test", ORIGIN, 403)):
        headers = {"Origin": origin} if origin else {}
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(f"{served.replace('http', 'ws', 1)}/widget/v1/ws?key={key}",
                                  headers=headers)
        assert refused.value.status == status


async def test_a_token_of_one_tenant_is_useless_for_another(
        served: str, http: aiohttp.ClientSession) -> None:
    shop = Client(served, http)
    await shop.connect()
    other = Client(served, http, key="pk_other_test", origin="https://other.example")
    other.token = shop.token
    refused = await other.connect()
    assert refused["type"] == "error" and refused["code"] == "token"


async def test_a_cut_mid_answer_resumes_without_loss_or_doubles(
        served: str, http: aiohttp.ClientSession, llm: FakeOpenAI) -> None:
    llm.chunk_delay_s = 0.15
    try:
        tab = Client(served, http)
        await tab.connect()
        asked = await tab.say("please tell me a long story about parcels and their journeys")
        before = await tab.events("delta", asked)
        assert tab.ws is not None
        await tab.ws.close()  # the connection drops mid-answer
        await asyncio.sleep(0.5)
        after = await tab.connect()
        assert after["type"] == "welcome" and after["history"] == []  # resuming
        rest = await tab.events("reply", asked)
    finally:
        llm.chunk_delay_s = 0.0
    events = before + rest
    reply = events[-1]
    deltas = "".join(e["text"] for e in events if e["type"] == "delta")
    assert deltas == reply["text"] and reply["text"].count("long story") == 1
    assert [e["type"] for e in events].count("reply") == 1
    # Resending the same message after the reconnect (as a browser does when it never
    # saw the echo) is not a second question.
    await tab.say("please tell me a long story about parcels and their journeys", asked)
    await tab.say("ping after resend")
    follow = await tab.events("reply")
    assert not any(e.get("client_id") == asked for e in follow)


async def test_the_sse_fallback_carries_the_same_conversation(
        served: str, http: aiohttp.ClientSession) -> None:
    headers = {"Origin": ORIGIN}
    async with http.post(f"{served}/widget/v1/session", json={"key": "pk_shop_test"},
                         headers=headers) as response:
        assert response.status == 200
        assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
        welcome = await response.json()
    token, seq = welcome["token"], welcome["seq"]
    async with http.get(f"{served}/widget/v1/events",
                        params={"key": "pk_shop_test", "token": token, "after": seq},
                        headers=headers) as stream:
        assert stream.headers["Content-Type"].startswith("text/event-stream")
        async with http.post(f"{served}/widget/v1/messages", headers=headers, json={
                "key": "pk_shop_test", "token": token,
                "frame": {"type": "message", "text": "sse question", "client_id": "sse00001"}
        }) as posted:
            assert posted.status == 202
        reply: dict[str, Any] = {}
        async for line in stream.content:
            if line.startswith(b"data: "):
                event = json.loads(line[6:])
                if event["type"] == "reply":
                    reply = event
                    break
    assert "sse question" in reply["text"]
    async with http.post(f"{served}/widget/v1/messages", headers=headers,
                         data=b"{not json") as bad:
        assert bad.status == 422 and "message" in await bad.json()
    async with http.post(f"{served}/widget/v1/session", json={"key": "pk_shop_test"},
                         headers={"Origin": "https://evil.example"}) as evil:
        assert evil.status == 403


# Last: it spends this IP's message budget for the tenant.
async def test_an_identified_user_can_use_the_sse_fallback(
        served: str, http: aiohttp.ClientSession) -> None:
    proof = hmac.new(WIDGET_SECRET.encode(), b"user-7", hashlib.sha256).hexdigest()
    headers = {"Origin": ORIGIN}
    async with http.post(f"{served}/widget/v1/session?key=pk_shop_test", headers=headers,
                         json={"key": "pk_shop_test", "user_id": "user-7",
                               "user_hmac": proof}) as response:
        welcome = await response.json()
    assert response.status == 200 and welcome["identified"] is True
    token = welcome["token"]
    async with http.get(f"{served}/widget/v1/events", headers=headers, params={
            "key": "pk_shop_test", "token": token, "after": welcome["seq"]}) as stream:
        assert stream.status == 200
        async with http.post(f"{served}/widget/v1/messages?key=pk_shop_test", headers=headers,
                             json={"key": "pk_shop_test", "token": token, "frame": {
                                 "type": "message", "text": "identified fallback",
                                 "client_id": "idfb0001"}}) as posted:
            assert posted.status == 202, await posted.text()
        async for line in stream.content:
            if line.startswith(b"data: ") and json.loads(line[6:])["type"] == "reply":
                assert "identified fallback" in json.loads(line[6:])["text"]
                break
    async with http.get(f"{served}/widget/v1/events", headers=headers,
                        params={"key": "pk_shop_test", "token": ""}) as anonymous:
        assert anonymous.status == 401


async def test_new_conversations_from_one_address_are_rate_limited(
        served: str, http: aiohttp.ClientSession) -> None:
    headers = {"Origin": "https://other.example"}
    statuses = []
    for _ in range(32):  # the "other" tenant allows 30 per minute per address
        async with http.post(f"{served}/widget/v1/session?key=pk_other_test",
                             json={"key": "pk_other_test"}, headers=headers) as response:
            statuses.append(response.status)
    assert statuses[:30] == [200] * 30 and statuses[30:] == [429, 429]


async def test_visitors_who_vanish_mid_answer_leave_no_tracebacks(
        served: str, http: aiohttp.ClientSession) -> None:
    tabs = [Client(served, http) for _ in range(15)]
    for tab in tabs:
        await tab.connect()
        await tab.say("a question, then I close the tab")
    for tab in tabs:
        assert tab.ws is not None
        tab.ws._response.connection.transport.abort()  # type: ignore[union-attr]
    await asyncio.sleep(1.5)
    assert "Traceback" not in LOGS[served].read_text()


async def test_size_and_rate_limits_answer_with_an_error(served: str,
                                                         http: aiohttp.ClientSession) -> None:
    tab = Client(served, http)
    await tab.connect()
    too_long = await tab.say("x" * 501)
    error = (await tab.events("error"))[-1]
    assert error["code"] == "too_long" and error["client_id"] == too_long
    assert tab.ws is not None
    await tab.ws.send_json({"type": "message", "text": "hi", "client_id": "bad id!"})
    assert (await tab.events("error"))[-1]["code"] == "invalid"
    codes = []
    for n in range(45):
        await tab.say(f"burst {n}")
    while "rate_limited" not in codes:
        event = await tab.ws.receive_json(timeout=15)
        codes.append(event.get("code", ""))
    assert "rate_limited" in codes


async def test_cors_preflight_allows_only_origins_a_tenant_allows(served: str) -> None:
    async def preflight(origin: str, key: str = "") -> tuple[int, str | None]:
        query = f"?key={key}" if key else ""
        async with aiohttp.ClientSession() as session, session.options(
                f"{served}/widget/v1/messages{query}",
                headers={"Origin": origin, "Access-Control-Request-Method": "POST"}) as r:
            return r.status, r.headers.get("Access-Control-Allow-Origin")

    assert await preflight(ORIGIN, "pk_shop_test") == (204, ORIGIN)
    assert await preflight(ORIGIN) == (204, ORIGIN)
    assert (await preflight("https://evil.example", "pk_shop_test"))[1] is None
    assert await preflight("https://evil.example") == (403, None)
    # Another tenant's origin does not get through a tenant's key.
    assert await preflight("https://other.example", "pk_shop_test") == (403, None)
    assert (await preflight(ORIGIN, "pk_nobody"))[1] is None
