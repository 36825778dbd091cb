"""The widget over two `switchboard serve` workers sharing one Redis and one MongoDB-wire
server, with no sticky sessions: a conversation that hops between the workers on every
message, an answer cut mid-stream on one worker and resumed on the other, and a resend
to the other worker that is not a second question."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import aiohttp
import pytest

from tests.fakes.openai_server import FakeOpenAI, start_fake_openai
from tests.servers import ServerProcess, start_switchboard
from tests.test_widget_transport import ORIGIN, ROOT, Client

KEY = "pk_hop_workers"


@pytest.fixture(scope="module")
async def llm() -> AsyncIterator[FakeOpenAI]:
    fake = FakeOpenAI()
    _, runner = await start_fake_openai(fake)
    yield fake
    await runner.cleanup()


@pytest.fixture(scope="module")
async def workers(llm: FakeOpenAI, redis_server: ServerProcess, mongo_uri: str,
                  tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[list[str]]:
    home = tmp_path_factory.mktemp("widget-workers")
    tenants = home / "tenants"
    tenants.mkdir()
    (tenants / "hop.toml").write_text(
        'id = "hop"\nname = "Hop"\n[limits]\nuser_per_minute = 1000\n'
        f'[widget]\npublic_key = "{KEY}"\nallowed_origins = ["{ORIGIN}"]\n'
        'ip_per_minute = 1000\n')
    split = urlsplit(mongo_uri)
    env = {"PATH": "/usr/bin:/bin", "SWITCHBOARD_TENANTS_DIR": str(tenants),
           "REDIS_URL": f"{redis_server.url}/4", "HF_HUB_OFFLINE": "1",
           "MONGODB_URI": f"{split.scheme}://{split.netloc}/hop_{uuid.uuid4().hex[:8]}",
           "OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": llm.url,
           "SWITCHBOARD_WIDGET_KEY": "a-widget-signing-key-shared-by-both-workers"}
    started = [await asyncio.to_thread(
        start_switchboard, {**env, "SWITCHBOARD_DATA_DIR": str(home / f"var{n}"),
                            "SWITCHBOARD_WORKER": str(n)}, ROOT, home / f"serve{n}.log")
        for n in range(2)]
    yield [base for base, _ in started]
    for _, process in started:
        process.terminate()
    for _, process in started:
        await asyncio.to_thread(process.wait, 30)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def on(worker: str, http: aiohttp.ClientSession, previous: Client | None = None) -> Client:
    """A tab on ``worker``, continuing where ``previous`` (on any worker) left off."""
    tab = Client(worker, http, key=KEY)
    if previous is not None:
        tab.token, tab.last_seq = previous.token, previous.last_seq
    return tab


async def test_a_conversation_hops_between_workers_on_every_message(
        workers: list[str], http: aiohttp.ClientSession, llm: FakeOpenAI) -> None:
    tab: Client | None = None
    asked = []
    for n in range(6):
        tab = on(workers[n % 2], http, tab)
        welcome = await tab.connect()
        assert welcome["type"] == "welcome"
        question = f"hop question {n}"
        asked.append(await tab.say(question))
        events = await tab.events("reply", asked[-1])  # asserts no event is repeated
        assert question in events[-1]["text"]
        assert tab.ws is not None
        await tab.ws.close()
    # The history on either worker has every turn, in order.
    fresh = Client(workers[1], http, key=KEY)
    fresh.token = tab.token if tab else ""
    history = (await fresh.connect())["history"]
    assert [m["text"] for m in history if m["role"] == "user"] == [
        f"hop question {n}" for n in range(6)]
    # The second message of the conversation carried the first as history (one session).
    request = next(r for r in llm.requests if "hop question 1" in
                   str(r["messages"][-1]["content"]))
    assert "hop question 0" in str(request["messages"][:-1])


async def test_an_answer_cut_on_one_worker_is_resumed_on_the_other(
        workers: list[str], http: aiohttp.ClientSession, llm: FakeOpenAI) -> None:
    llm.chunk_delay_s = 0.05
    try:
        first = on(workers[0], http)
        await first.connect()
        asked = await first.say("a long answer please, with many words in it")
        seen = await first.events("delta", asked)
        assert first.ws is not None
        await first.ws.close()  # the tab loses its connection mid-answer
        other = on(workers[1], http, first)
        started = asyncio.get_running_loop().time()
        welcome = await other.connect()
        assert welcome["type"] == "welcome"
        rest = await other.events("reply", asked)
        assert asyncio.get_running_loop().time() - started < 5
        deltas = "".join(e["text"] for e in seen + rest if e["type"] == "delta")
        assert deltas == rest[-1]["text"], "an event was lost or repeated across workers"
    finally:
        llm.chunk_delay_s = 0.0


async def test_a_resend_to_the_other_worker_is_not_a_second_question(
        workers: list[str], http: aiohttp.ClientSession, llm: FakeOpenAI) -> None:
    one = on(workers[0], http)
    await one.connect()
    client_id = uuid.uuid4().hex[:12]
    await one.say("resent question", client_id)
    await one.events("reply", client_id)
    other = on(workers[1], http, one)
    await other.connect()
    await other.say("resent question", client_id)  # the browser did not see it accepted
    await asyncio.sleep(1.0)
    assert sum("resent question" in str(r["messages"][-1]["content"])
               for r in llm.requests) == 1
