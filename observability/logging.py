"""JSON (or console) logs that carry request_id, tenant and channel on every line, and
the trace and span ids of the current span (``tracing.py``) inside a traced turn.

The engine sets the three ids in context variables at the start of a turn, so every log
call made while handling it (in any module, any task spawned from it) is tagged without
passing them around. ``redact`` keeps known secret values out of every line.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from observability.tracing import current_ids

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")
tenant_var: contextvars.ContextVar[str] = contextvars.ContextVar("tenant", default="")
channel_var: contextvars.ContextVar[str] = contextvars.ContextVar("channel", default="")

_CONTEXT_FIELDS = ("request_id", "tenant", "channel")
_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}
_secrets: set[str] = set()


def register_secret(value: str) -> None:
    """Never print this value: every formatted line has it replaced by ``[redacted]``."""
    if value and len(value) >= 6:
        _secrets.add(value)


def _redact(text: str) -> str:
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, "[redacted]")
    return text


@contextmanager
def log_context(*, request_id: str = "", tenant: str = "", channel: str = "") -> Iterator[None]:
    tokens = [var.set(value) for var, value in
              ((request_id_var, request_id), (tenant_var, tenant), (channel_var, channel))
              if value]
    try:
        yield
    finally:
        for token in reversed(tokens):
            token.var.reset(token)


def _context(record: logging.LogRecord) -> dict[str, str]:
    fields = {name: getattr(record, name, None) or var.get() for name, var in
              zip(_CONTEXT_FIELDS, (request_id_var, tenant_var, channel_var), strict=True)}
    trace_id, span_id = current_ids()
    if trace_id:
        fields.update(trace_id=trace_id, span_id=span_id)
    return fields


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            **_context(record),
        }
        entry.update({k: v for k, v in record.__dict__.items()
                      if k not in _STANDARD and k not in entry})
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return _redact(json.dumps(entry, default=str))


class ConsoleFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        ctx = " ".join(f"{k}={v}" for k, v in _context(record).items() if v)
        line = f"{record.levelname[0]} {record.name}: {record.getMessage()}"
        if ctx:
            line += f"  [{ctx}]"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return _redact(line)


def configure_logging(level: str = "INFO", fmt: str = "json") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else ConsoleFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("pymongo", "httpx", "httpcore", "openai", "aiohttp.access", "apscheduler"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
