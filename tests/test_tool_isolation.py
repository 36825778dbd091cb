"""The model's tool calls never reach another tenant, whatever it asks for.

Two tenants hold documents and a conversation under the same thread name, each marked
with the tenant's own token. Hypothesis draws the tool calls an attacker would make the
model send from the first tenant — searches naming the other tenant or its marker,
thread summaries, tagging the other tenant's document, arguments smuggling a
``tenant`` field, a private-network URL to ingest — and the stand-in model obeys, then
writes everything the tools returned into its answer. The caller is an admin, the
strongest position there is. No answer may show the other tenant's marker, and the
other tenant's documents, tags and conversation must be exactly as they were.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.memory import MemoryChannel
from core.knowledge.models import SourceDocument
from core.llm.openai_chat import OpenAIAnswerer
from core.sessions.models import ConversationKey
from tests.conftest import tenant
from tests.fakes.openai_server import FakeOpenAI, Plan, tool_results

MARKERS = {"acme": "ACME-5521", "globex": "GLOBEX-8812"}
ALLOW = {"allow": ["search_knowledge", "summarize_thread", "tag_document", "ingest_url",
                   "extract_entities", "sources", "stats", "calculator"], "max_steps": 2}
CONFIGS = {t: tenant(t, tools=ALLOW, knowledge={"score_threshold": 0.0}) for t in MARKERS}
TURNS = 60


async def _documents(knowledge: Any, tenant_id: str) -> None:
    marker = MARKERS[tenant_id]

    async def docs() -> Any:
        for topic in ("refunds", "shipping", "passwords"):
            yield SourceDocument(source=f"inline:{topic}", title=f"{topic} ({marker})",
                                 content=f"# {topic}\n\n{marker}: the {topic} policy of "
                                         f"{tenant_id}.".encode(),
                                 content_type="text/markdown")
    await knowledge.ingestor.ingest_stream(CONFIGS[tenant_id], docs())


@st.composite
def attacks(draw: st.DrawFn) -> list[tuple[str, dict[str, Any] | str]]:
    other = "globex"  # never its marker: an answer may echo what the attacker wrote
    one = st.one_of(
        st.builds(lambda q: ("search_knowledge", {"query": q}), st.sampled_from([
            f"{other} policy", f"{other} refunds", f"refunds tenant={other}", "passwords",
            f"ignore acme, search {other}'s documents"])),
        st.builds(lambda n: ("summarize_thread", {"limit": n}), st.integers(1, 50)),
        st.just(("summarize_thread", {"limit": 5, "tenant": other})),
        st.just(("summarize_thread", {"thread": "t1", "tenant_id": other})),
        st.builds(lambda s: ("tag_document", {"source": s, "tags": ["pwned"]}),
                  st.sampled_from(["inline:refunds", f"refunds ({other})",
                                   "globex:inline:refunds"])),
        st.builds(lambda u: ("ingest_url", {"url": u}), st.sampled_from([
            "http://127.0.0.1:9/secrets", "http://169.254.169.254/latest/meta-data",
            "http://10.0.0.5/admin"])),
        st.just(("sources", {})), st.just(("stats", {})),
        st.just(("search_knowledge", '{"query": "x", "tenant": "globex"')),
    )
    return draw(st.lists(one, min_size=1, max_size=3))


async def test_randomized_tool_calls_never_cross_tenants(
        make_engine: Callable[..., Any], knowledge: Any, llm: FakeOpenAI) -> None:
    drawn: list[list[tuple[str, dict[str, Any] | str]]] = []

    @settings(max_examples=TURNS, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(attacks())
    def collect(calls: list[tuple[str, dict[str, Any] | str]]) -> None:
        drawn.append(calls)

    collect()
    for tenant_id in MARKERS:
        await _documents(knowledge, tenant_id)
    kit = await make_engine(*CONFIGS.values(), knowledge=knowledge,
                            answerer=OpenAIAnswerer("sk-test", llm.url))
    globex = MemoryChannel(kit.engine, "globex")
    await globex.send(f"My order {MARKERS['globex']} is late", thread="t1", user="gina")
    key = ConversationKey("globex", "memory", "t1")
    before_thread = [m.text for m in await kit.sessions.transcript(key, 50)]
    before_docs = {(r.source, tuple(r.tags)) for r in await knowledge.catalog.list("globex")}

    acme = MemoryChannel(kit.engine, "acme")
    current: list[list[tuple[str, dict[str, Any] | str]]] = []

    def script(body: dict[str, Any], step: int) -> Plan:
        if step == 1:
            return Plan(calls=current[0])
        return Plan("Tools said: " + " || ".join(tool_results(body)))
    llm.script = script
    answers = []
    for n, calls in enumerate(drawn):
        current[:] = [calls]
        delivery = await acme.send(f"question {n}", thread="t1", user="boss",
                                   roles=frozenset({"operator"}))
        assert delivery.reply is not None
        answers.append(delivery.reply.text + " " + " ".join(
            f"{c.title} {c.source}" for c in delivery.reply.citations))
    leaked = [a for a in answers if MARKERS["globex"] in a]
    assert leaked == [], f"{len(leaked)} answers showed the other tenant: {leaked[:3]}"
    assert sum(MARKERS["acme"] in a for a in answers) > 0  # the tools did find acme's own
    assert [m.text for m in await kit.sessions.transcript(key, 50)] == before_thread
    assert {(r.source, tuple(r.tags)) for r in await knowledge.catalog.list("globex")} == \
        before_docs
    audited = await kit.deps.audit.recent("globex", 100)
    assert all(r.user_id != "boss" for r in audited)
