"""Traces: one turn end to end as OpenTelemetry spans, and its trace id in every log line.

A turn is a root span (``turn``) with a child per pipeline stage (``stage.<name>``);
under them, retrieval (``retrieve``), each model call (``llm.chat``, one per attempt),
each tool call (``tool.<name>``) and the delivery of the reply to its channel
(``deliver``). Spans carry the tenant, channel, request id and outcome as attributes,
never message text.

Each process installs the SDK's tracer provider once (``configure_tracing``), so spans
always have ids and log lines can name them. Spans leave the process only when
``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) is set: then
they are recorded (with the SDK's sampler, which honours ``OTEL_TRACES_SAMPLER``),
batched and sent over OTLP/HTTP with the exporter's own environment settings (headers,
timeout, compression). With nowhere to send them, only the turn's root span is made, and
not recorded — it still has ids, so log lines still name their trace — at a fraction
of the cost (the widget benchmark lost 8 % of its throughput to recording spans nobody
read). ``OTEL_SERVICE_NAME``
names the service (default: ``switchboard-<process>``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from opentelemetry.trace import Link, Span, SpanKind, TraceState
from opentelemetry.util.types import Attributes

log = logging.getLogger("switchboard.tracing")

tracer = trace.get_tracer("switchboard")
"""The one tracer; a proxy until ``configure_tracing`` installs the provider. The turn's
root span always goes through it (so every log line of a turn names its trace); the
spans under it go through ``span``."""

_provider: TracerProvider | None = None


class _WhenRead(Sampler):
    """Records spans only once something will read them (a processor was added)."""

    recording = False

    def should_sample(self, parent_context: Context | None, trace_id: int, name: str,
                      kind: SpanKind | None = None, attributes: Attributes = None,
                      links: Sequence[Link] | None = None,
                      trace_state: TraceState | None = None) -> SamplingResult:
        return SamplingResult(Decision.RECORD_AND_SAMPLE if self.recording else Decision.DROP)

    def get_description(self) -> str:
        return "RecordWhenRead"


_when_read = _WhenRead()
_recorded = False
"""Spans are recorded: exported, or read by a processor this process added."""


def configure_tracing(process: str, *processors: SpanProcessor) -> TracerProvider:
    """Install the tracer provider (once per process) with the OTLP exporter when an
    endpoint is configured, and any ``processors`` given (tests add an in-memory one)."""
    global _provider, _recorded
    if _provider is None:
        name = os.environ.get("OTEL_SERVICE_NAME") or f"switchboard-{process}"
        endpoint = (os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
                    or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"))
        resource = Resource.create({SERVICE_NAME: name})
        _provider = TracerProvider(resource=resource) if endpoint else \
            TracerProvider(resource=resource, sampler=_when_read)
        if endpoint:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
                OTLPSpanExporter,
            )
            _provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
            _recorded = True
            log.info("exporting traces over OTLP/HTTP to %s", endpoint)
        trace.set_tracer_provider(_provider)
    for processor in processors:
        _provider.add_span_processor(processor)
        _when_read.recording = _recorded = True
    return _provider


def span(name: str, **options: Any) -> AbstractContextManager[Span]:
    """A child span while spans are recorded; otherwise nothing at all (the turn's root
    span still gives log lines their trace id), so an unread trace costs one span a turn."""
    if _recorded:
        return tracer.start_as_current_span(name, **options)
    return nullcontext(trace.INVALID_SPAN)


def shutdown_tracing() -> None:
    """Send what is batched before the process exits."""
    if _provider is not None:
        _provider.shutdown()


def current_ids() -> tuple[str, str]:
    """The current span's trace and span ids in hex, or empty strings outside a span."""
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return "", ""
    return f"{context.trace_id:032x}", f"{context.span_id:016x}"
