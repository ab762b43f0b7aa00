"""Prometheus metrics shared by the services; every series carries the ``service`` label."""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Scope

HTTP_REQUESTS = Counter(
    "ticketflow_http_requests_total", "HTTP requests", ["service", "method", "route", "status"]
)
HTTP_LATENCY = Histogram(
    "ticketflow_http_request_seconds", "HTTP request latency", ["service", "method", "route"]
)
EVENTS_CONSUMED = Counter(
    "ticketflow_events_consumed_total", "Events handled", ["service", "type", "outcome"]
)
OUTBOX_PUBLISHED = Counter(
    "ticketflow_outbox_published_total", "Outbox rows published to the bus", ["service"]
)
OUTBOX_RELAY_ERRORS = Counter(
    "ticketflow_outbox_relay_errors_total", "Outbox relay failures (retried)", ["service"]
)
DB_STATEMENTS = Counter(
    "ticketflow_db_statements_total",
    "SQL statements sent to the database, BEGIN and COMMIT included; origin is the HTTP route "
    "that sent them, or 'background' (consumers, relay, loops)",
    ["service", "origin"],
)
DB_GROUP_SIZE = Histogram(
    "ticketflow_db_group_size",
    "Writes sent together in one statement by a group commit (router's webhook door on "
    "PostgreSQL): 1 when idle, more under concurrency",
    ["service", "writes"],
    buckets=(1, 2, 4, 8, 16, 32, 64),
)

# The scope of the HTTP request being served (set by ``shared.app.MetricsMiddleware``); the
# router writes the matched route into it, which names the origin of a statement.
current_request: contextvars.ContextVar[Scope | None] = contextvars.ContextVar(
    "current_request", default=None
)


def route_of(scope: Scope) -> str:
    """The matched route's template (``/v1/tickets/{ticket_id}``), or ``unmatched``."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "unmatched"


def statement_counter(service: str) -> Callable[[], Any]:
    """The ``DB_STATEMENTS`` child to count a statement sent now: the HTTP route being served,
    else ``background``."""
    background = DB_STATEMENTS.labels(service, "background")

    def counter() -> Any:
        scope = current_request.get()
        return background if scope is None else DB_STATEMENTS.labels(service, route_of(scope))

    return counter


def count_statements(engine: AsyncEngine, service: str) -> None:
    """Count every statement ``engine`` sends (``DB_STATEMENTS``): each execute, and BEGIN,
    COMMIT and ROLLBACK outside autocommit."""
    counter = statement_counter(service)

    def on_statement(*_: Any) -> None:
        counter().inc()

    def on_transaction(conn: Any) -> None:
        if conn.get_execution_options().get("isolation_level") != "AUTOCOMMIT":
            counter().inc()

    sync_engine = engine.sync_engine
    event.listen(sync_engine, "before_cursor_execute", on_statement)
    # SQLite's BEGIN is itself an execute (``shared.db``), counted as one.
    names = (
        ("commit", "rollback")
        if sync_engine.dialect.name == "sqlite"
        else ("begin", "commit", "rollback")
    )
    for name in names:
        event.listen(sync_engine, name, on_transaction)


async def metrics_endpoint(_: Request) -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
