"""Session-wide real servers and the engine factory most tests build on.

MongoDB: the MongoDB-wire server (nx-27017) started here, or a real ``mongod`` when
``MONGODB_URI`` is set (same tests). Redis: a real redis-server started here. The LLM:
a local OpenAI-compatible fake driven by the real ``openai`` client.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from core.commands.builtins import builtin_commands
from core.engine import Engine, EngineDeps, EngineSettings
from core.knowledge.base import NoKnowledge
from core.llm.base import Answerer
from core.llm.extractive import ExtractiveAnswerer
from core.llm.openai_chat import OpenAIAnswerer
from core.sessions.cached import CachedSessionStore
from core.state.base import SharedState
from core.state.memory import MemoryState
from core.state.redis import RedisState
from core.stores.mongo_audit import MongoAuditLog
from core.stores.mongo_client import MongoConnection
from core.stores.mongo_feedback import MongoFeedbackStore
from core.stores.mongo_sessions import MongoSessionStore
from core.stores.mongo_usage import MongoUsageStore
from core.tenants.models import TenantConfig
from core.tenants.registry import TenantRegistry
from core.usage import UsageLedger
from tests.fakes.openai_server import FakeOpenAI, start_fake_openai
from tests.fakes.slack_api import FakeSlack, start_fake_slack
from tests.servers import ServerProcess, start_mongo_wire, start_redis

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def redis_server() -> Iterator[ServerProcess]:
    server = start_redis()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def mongo_uri() -> Iterator[str]:
    if os.environ.get("MONGODB_URI"):
        yield os.environ["MONGODB_URI"]
        return
    server = start_mongo_wire()
    yield server.url
    server.stop()


@pytest.fixture
async def mongo(mongo_uri: str) -> AsyncIterator[MongoConnection]:
    """A connection to a database of its own, dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    connection = MongoConnection(mongo_uri, database=name)
    yield connection
    await connection.client.drop_database(name)
    await connection.close()


@pytest.fixture(params=["memory", "redis"])
async def state(request: pytest.FixtureRequest) -> AsyncIterator[SharedState]:
    """The same tests against both shared-state implementations."""
    if request.param == "memory":
        yield MemoryState()
        return
    server: ServerProcess = request.getfixturevalue("redis_server")
    redis_state = RedisState(server.url, prefix=f"t{uuid.uuid4().hex[:8]}:")
    yield redis_state
    await redis_state.close()


@pytest.fixture(scope="module")
async def fake_slack() -> AsyncIterator[FakeSlack]:
    """A Slack Web API stand-in for one test module (its calls and threads recorded)."""
    fake = FakeSlack()
    runner = await start_fake_slack(fake)
    yield fake
    await runner.cleanup()


@pytest.fixture(scope="session")
async def fake_llm() -> AsyncIterator[FakeOpenAI]:
    fake, runner = await start_fake_openai(FakeOpenAI())
    yield fake
    await runner.cleanup()


@pytest.fixture
def llm(fake_llm: FakeOpenAI) -> Iterator[FakeOpenAI]:
    fake_llm.reset()
    yield fake_llm
    fake_llm.reset()


def tenant(tenant_id: str, **sections: Any) -> TenantConfig:
    """A tenant config for tests: defaults plus the given sections."""
    return TenantConfig.model_validate({"id": tenant_id, "name": tenant_id.title(),
                                        **sections})


class EngineKit:
    """An engine over real stores, plus handles on its parts for assertions."""

    def __init__(self, engine: Engine, deps: EngineDeps, mongo: MongoConnection) -> None:
        self.engine = engine
        self.deps = deps
        self.mongo = mongo
        self.sessions = deps.sessions
        self.usage = deps.usage


@pytest.fixture
async def make_engine(mongo: MongoConnection, state: SharedState
                      ) -> AsyncIterator[Callable[..., Any]]:
    ledgers: list[UsageLedger] = []
    answerers: list[Answerer] = []

    async def build(*configs: TenantConfig, answerer: Answerer | None = None,
                    settings: EngineSettings | None = None,
                    database: MongoConnection | None = None,
                    knowledge: Any = None) -> EngineKit:
        db = database or mongo
        mongo_sessions = MongoSessionStore(db.db)
        audit = MongoAuditLog(db.db)
        if database is None:
            await mongo_sessions.ensure_indexes()
            await audit.ensure_indexes()
        sessions = CachedSessionStore(mongo_sessions, state)
        usage = UsageLedger(MongoUsageStore(db.db), state)
        ledgers.append(usage)
        chosen = answerer or ExtractiveAnswerer()
        answerers.append(chosen)
        deps = EngineDeps(tenants=TenantRegistry.from_configs(*configs), state=state,
                          sessions=sessions, usage=usage, audit=audit, answerer=chosen,
                          retriever=knowledge.retriever if knowledge else NoKnowledge(),
                          commands=builtin_commands(),
                          settings=settings or EngineSettings(lock_wait_s=10),
                          answer_cache=knowledge.answers if knowledge else None,
                          knowledge=knowledge, feedback=MongoFeedbackStore(db.db))
        return EngineKit(Engine(deps), deps, db)

    yield build
    for ledger in ledgers:
        await ledger.close()
    for answerer in answerers:
        await answerer.close()


@pytest.fixture
async def openai_answerer(llm: FakeOpenAI) -> AsyncIterator[Callable[[], OpenAIAnswerer]]:
    """Answerers against the stand-in, closed (with their connection pools) afterwards."""
    made: list[OpenAIAnswerer] = []

    def build() -> OpenAIAnswerer:
        made.append(OpenAIAnswerer("sk-test-not-a-real-key", llm.url))
        return made[-1]

    yield build
    for answerer in made:
        await answerer.close()


@pytest.fixture(scope="session")
def embedders() -> Any:
    """One MiniLM embedder for the whole session (loading the model takes a second)."""
    from core.knowledge.embedders import EmbedderRegistry
    return EmbedderRegistry()


@pytest.fixture
async def knowledge(mongo: MongoConnection, embedders: Any, tmp_path: Any
                    ) -> AsyncIterator[Any]:
    """A knowledge service over an in-memory Qdrant, the real catalog and real embeddings."""
    from core.knowledge.answer_cache import AnswerCache
    from core.knowledge.index import QdrantIndex
    from core.knowledge.service import KnowledgeService
    from core.stores.mongo_documents import MongoCatalog
    catalog = MongoCatalog(mongo.db)
    await catalog.ensure_indexes()
    index = QdrantIndex(url=os.environ.get("QDRANT_URL", ""),
                        api_key=os.environ.get("QDRANT_API_KEY", ""),
                        namespace=f"t{uuid.uuid4().hex[:10]}")
    service = KnowledgeService(index, catalog, embedders, AnswerCache(MemoryState()), tmp_path)
    yield service
    await service.close()
