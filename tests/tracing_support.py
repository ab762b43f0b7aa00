"""Tracing tests' shared part: an in-memory span exporter and one webhook's walk to assert on."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator

import httpx
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from shared import telemetry
from tests.conftest import eventually
from tests.intake_support import fixture, signed, unique_id, with_ticket


@contextlib.contextmanager
def traced() -> Iterator[InMemorySpanExporter]:
    """Tracing on for the block (create the apps inside it), spans kept in memory."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    telemetry.enable(provider)
    try:
        yield exporter
    finally:
        telemetry.disable()
        provider.shutdown()


def _handler_span(
    spans: list[ReadableSpan], service: str, event_type: str, trace_id: int
) -> ReadableSpan | None:
    for span in spans:
        if span.name == f"{service} process {event_type}" and span.context.trace_id == trace_id:
            return span
    return None


async def _webhook(
    router: httpx.AsyncClient, exporter: InMemorySpanExporter, external_id: str, status: str
) -> ReadableSpan:
    """Post one signed generic webhook; its request's server span."""
    data = with_ticket("generic", fixture("generic_upsert"), external_id)
    data["data"]["ticket"]["status"] = status
    body = json.dumps(data).encode()
    response = await router.post(
        "/v1/webhooks/generic", content=body, headers=signed("generic", body)
    )
    assert response.status_code == 202, response.text
    return next(
        span
        for span in reversed(exporter.get_finished_spans())
        if span.kind == SpanKind.SERVER and span.name == "POST /v1/webhooks/generic"
    )


async def _chain(
    exporter: InMemorySpanExporter, request: ReadableSpan, downstream: list[tuple[str, str]]
) -> None:
    """router's inbound handler is the request's child; each downstream handler is router's."""
    trace_id = request.context.trace_id

    async def handled() -> list[ReadableSpan] | None:
        spans = list(exporter.get_finished_spans())
        found = [_handler_span(spans, "router", "ticket.upsert", trace_id)]
        found += [_handler_span(spans, s, t, trace_id) for s, t in downstream]
        return found if all(found) else None  # type: ignore[return-value]

    try:
        # Generous: the first events wait for three consumer groups to join on a busy machine.
        router_span, *others = await eventually(handled, within=90)
    except AssertionError:
        seen = sorted(
            f"{span.name} trace={span.context.trace_id:032x}"
            for span in exporter.get_finished_spans()
            if span.kind in (SpanKind.CONSUMER, SpanKind.SERVER)
        )
        raise AssertionError(f"trace {trace_id:032x} incomplete; spans seen: {seen}") from None
    assert request.parent is None  # the webhook starts the trace
    # The door's statement (on asyncpg directly on PostgreSQL, through the engine on SQLite)
    # is the request's child.
    assert any(
        span.kind == SpanKind.CLIENT
        and span.parent is not None
        and span.parent.span_id == request.context.span_id
        for span in exporter.get_finished_spans()
    ), "no SQL span under the webhook request"
    assert router_span.kind == SpanKind.CONSUMER
    assert router_span.parent is not None and router_span.parent.span_id == request.context.span_id
    for span in others:
        assert span.kind == SpanKind.CONSUMER
        assert span.parent is not None and span.parent.is_remote
        assert span.parent.span_id == router_span.context.span_id
    # A handler's SQL statements are its children (SQLAlchemy instrumentation).
    assert any(
        span.kind == SpanKind.CLIENT
        and span.parent is not None
        and span.parent.span_id == others[0].context.span_id
        for span in exporter.get_finished_spans()
    ), "no SQL span under the downstream handler"


async def assert_one_webhook_is_one_trace(
    router: httpx.AsyncClient, exporter: InMemorySpanExporter
) -> None:
    """Each webhook is one trace: router's request span is its root, router's inbound handler
    the request's child, sla's and survey's handlers children of router's handler."""
    external_id = unique_id("trace-")
    created = await _webhook(router, exporter, external_id, "open")
    await _chain(exporter, created, [("sla", "ticket.created")])
    solved = await _webhook(router, exporter, external_id, "solved")
    assert solved.context.trace_id != created.context.trace_id
    await _chain(exporter, solved, [("sla", "ticket.solved"), ("survey", "ticket.solved")])
