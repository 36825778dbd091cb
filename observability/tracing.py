"""Traces: one turn end to end as OpenTelemetry spans, and its trace id in every log line.

A turn is a root span (``turn``) with a child per pipeline stage (``stage.<name>``);
under them, retrieval (``retrieve``), each model call (``llm.chat``, one per attempt),
each tool call (``tool.<name>``) and the delivery of the reply to its channel
(``deliver``). Spans carry the tenant, channel, request id and outcome as attributes,
never message text.

Each process installs the SDK's tracer provider once (``configure_tracing``), so spans
always have ids and log lines can name them. Spans leave the process only when
``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) is set: then
they are batched and sent over OTLP/HTTP with the exporter's own environment settings
(headers, timeout, compression). ``OTEL_SERVICE_NAME`` names the service (default:
``switchboard-<process>``).
"""

from __future__ import annotations

import logging
import os

from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

log = logging.getLogger("switchboard.tracing")

tracer = trace.get_tracer("switchboard")
"""The one tracer; a proxy until ``configure_tracing`` installs the provider."""

_provider: TracerProvider | None = None


def configure_tracing(process: str, *processors: SpanProcessor) -> TracerProvider:
    """Install the tracer provider (once per process) with the OTLP exporter when an
    endpoint is configured, and any ``processors`` given (tests add an in-memory one)."""
    global _provider
    if _provider is None:
        name = os.environ.get("OTEL_SERVICE_NAME") or f"switchboard-{process}"
        _provider = TracerProvider(resource=Resource.create({SERVICE_NAME: name}))
        endpoint = (os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
                    or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"))
        if endpoint:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
                OTLPSpanExporter,
            )
            _provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
            log.info("exporting traces over OTLP/HTTP to %s", endpoint)
        trace.set_tracer_provider(_provider)
    for processor in processors:
        _provider.add_span_processor(processor)
    return _provider


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
