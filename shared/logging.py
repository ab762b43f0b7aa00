"""Structured logs: one JSON object per line in production, readable text in ``dev``.

``log_context(ticket_id=..., trace_id=...)`` binds fields to every line logged inside it; with
tracing on (``shared.telemetry``) every line inside a span also carries its ``trace_id`` and
``span_id``.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from opentelemetry import trace

_context: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "log_context", default=None
)


@contextlib.contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Add ``fields`` (e.g. ticket_id, trace_id) to every log line emitted inside the block."""
    token = _context.set(
        {**(_context.get() or {}), **{k: v for k, v in fields.items() if v is not None}}
    )
    try:
        yield
    finally:
        _context.reset(token)


class _ContextFilter(logging.Filter):
    """Adds the bound fields, and the current span's ``trace_id``/``span_id`` when tracing is on."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = _context.get() or {}
        span_context = trace.get_current_span().get_span_context()
        if span_context.is_valid:
            context = {
                **context,
                "trace_id": format(span_context.trace_id, "032x"),
                "span_id": format(span_context.span_id, "016x"),
            }
        record.context = context
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            **getattr(record, "context", {}),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        context = getattr(record, "context", {})
        if context:
            line += " " + " ".join(f"{k}={v}" for k, v in context.items())
        return line


def configure_logging(level: str = "info", fmt: str = "json", *, embedded: bool = False) -> None:
    """One handler on the root logger. ``embedded`` (``ticketflow dev``): three uvicorn servers
    share the process, and its banner already says where they listen, so their start and stop
    lines are kept for ``debug``."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(_ContextFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("aiokafka", "kafka", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    # httpx logs every request at INFO (demo seeding, outbound deliveries): noise, not news.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    quiet_servers = embedded and level.lower() != "debug"
    # Explicit either way: uvicorn's own logging config may have set its parent to INFO.
    logging.getLogger("uvicorn.error").setLevel(logging.WARNING if quiet_servers else level.upper())
