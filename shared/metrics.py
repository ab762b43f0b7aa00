"""Prometheus metrics shared by the services; every series carries the ``service`` label."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from starlette.requests import Request
from starlette.responses import Response

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


async def metrics_endpoint(_: Request) -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
