"""Traces: one turn end to end — its stages, retrieval, each model call, a tool call and
the delivery — in one trace whose id every log line of the turn carries; and, with
``OTEL_EXPORTER_OTLP_ENDPOINT`` set, the spans of a real ``switchboard chat`` process
arriving over OTLP/HTTP at a receiver that decodes them as the collector does."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from adapters.memory import MemoryChannel
from core.knowledge.models import SourceDocument
from core.llm.openai_chat import OpenAIAnswerer
from observability.logging import JsonFormatter
from observability.tracing import configure_tracing
from tests.conftest import EngineKit, tenant
from tests.fakes.openai_server import FakeOpenAI, Fault, Plan, steps, tool_results

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    configure_tracing("tests", SimpleSpanProcessor(exporter))
    yield exporter


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(JsonFormatter())
        self.lines: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))


async def test_one_turn_is_one_trace_from_stages_to_delivery(
        spans: InMemorySpanExporter, make_engine: Callable[..., Any], knowledge: Any,
        llm: FakeOpenAI, openai_answerer: Callable[[], OpenAIAnswerer]) -> None:
    config = tenant("traced", tools={"allow": ["calculator"]},
                    knowledge={"score_threshold": 0.0})

    async def docs() -> Any:
        yield SourceDocument(source="inline:boxes", title="Boxes",
                             content=b"# Boxes\n\nA box costs 19 euros.",
                             content_type="text/markdown")
    await knowledge.ingestor.ingest_stream(config, docs())
    kit: EngineKit = await make_engine(config, knowledge=knowledge,
                                       answerer=openai_answerer())
    llm.inject(Fault(status=503))  # the first model call fails and is retried: two spans
    llm.script = steps(Plan(calls=[("calculator", {"expression": "3 * 19"})]),
                       lambda body: Plan(f"Three boxes cost {tool_results(body)[0]} euros [1]."))
    handler = Lines()
    root_logger = logging.getLogger()
    level = root_logger.level
    root_logger.addHandler(handler)
    root_logger.setLevel(logging.INFO)
    spans.clear()
    try:
        turn = await MemoryChannel(kit.engine, "traced").send("What do three boxes cost?")
    finally:
        root_logger.removeHandler(handler)
        root_logger.setLevel(level)
    assert "57 euros" in turn.text
    finished = spans.get_finished_spans()
    [root] = [s for s in finished if s.name == "turn"]
    trace_id = root.context.trace_id
    ours = [s for s in finished if s.context.trace_id == trace_id]
    names = [s.name for s in ours]
    assert {"stage.resolve_tenant", "stage.screen_input", "stage.respond", "stage.persist",
            "retrieve", "tool.calculator", "deliver"} <= set(names), names
    assert names.count("llm.chat") == 3  # the 503, its retry, the step after the tool
    assert root.attributes is not None and root.attributes["switchboard.tenant"] == "traced"
    assert root.attributes["switchboard.outcome"] == "answered"
    failed = [s for s in ours if s.name == "llm.chat" and not s.status.is_ok]
    assert len(failed) == 1
    by_id = {s.context.span_id: s for s in ours}
    respond = next(s for s in ours if s.name == "stage.respond")
    for name in ("retrieve", "tool.calculator", "llm.chat", "deliver"):
        span = next(s for s in ours if s.name == name)
        while span.parent is not None and span.parent.span_id in by_id and span is not respond:
            span = by_id[span.parent.span_id]
        assert span is respond, f"{name} is not under stage.respond"
    logged = [line for line in handler.lines if line.get("request_id")]
    assert logged and all(line["trace_id"] == f"{trace_id:032x}" for line in logged)
    assert all("What do three boxes" not in json.dumps(dict(s.attributes or {}))
               for s in ours)  # attributes never carry the message


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[str, list[ExportTraceServiceRequest]]]:
    """An OTLP/HTTP receiver: decodes each export as the collector's protobuf message."""
    received: list[ExportTraceServiceRequest] = []

    async def traces(request: web.Request) -> web.Response:
        if request.content_type != "application/x-protobuf":
            return web.Response(status=415)
        export = ExportTraceServiceRequest()
        export.ParseFromString(await request.read())
        received.append(export)
        return web.Response(body=ExportTraceServiceResponse().SerializeToString(),
                            content_type="application/x-protobuf")
    app = web.Application()
    app.router.add_post("/v1/traces", traces)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}", received
    await runner.cleanup()


async def test_a_real_process_exports_its_turn_over_otlp(
        receiver: tuple[str, list[ExportTraceServiceRequest]], tmp_path: Path) -> None:
    url, received = receiver
    env = {"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1",
           "SWITCHBOARD_DATA_DIR": str(tmp_path), "SWITCHBOARD_TENANTS_DIR": str(ROOT / "tenants"),
           "OTEL_EXPORTER_OTLP_ENDPOINT": url, "OTEL_SERVICE_NAME": "switchboard-test"}
    result = await asyncio.to_thread(subprocess.run, [
        sys.executable, "-m", "bots", "chat", "--tenant", "demo", "--message", "/help"],
        env=env, capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    spans = [(s.name, r.resource) for export in received for r in export.resource_spans
             for scope in r.scope_spans for s in scope.spans]
    assert "turn" in [name for name, _ in spans], spans
    service = {a.value.string_value for _, resource in spans for a in resource.attributes
               if a.key == "service.name"}
    assert service == {"switchboard-test"}


async def test_log_lines_name_their_trace_when_nothing_is_exported(tmp_path: Path) -> None:
    """Unexported, only the turn's root span is made (unrecorded, cheap): its trace id
    is still on every log line of the turn."""
    env = {"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1", "LOG_LEVEL": "DEBUG",
           "SWITCHBOARD_DATA_DIR": str(tmp_path), "SWITCHBOARD_TENANTS_DIR": str(ROOT / "tenants")}
    result = await asyncio.to_thread(subprocess.run, [
        sys.executable, "-m", "bots", "chat", "--tenant", "demo", "--message", "/help"],
        env=env, capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    [turn] = [line for line in result.stderr.splitlines() if "turn command" in line]
    assert re.search(r"trace_id=[0-9a-f]{32}", turn), turn
