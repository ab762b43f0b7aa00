"""OpenTelemetry tracing, configured by the standard ``OTEL_*`` environment variables.

Off unless an exporter is asked for (``OTEL_EXPORTER_OTLP_ENDPOINT``,
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` or ``OTEL_TRACES_EXPORTER=otlp|console``): then nothing is
instrumented and no span is made. On, every HTTP request (FastAPI), outgoing HTTP call (httpx),
SQL statement (SQLAlchemy) and Kafka call (aiokafka) gets a span, and every consumed event gets a
handler span whose parent is the span that emitted it: the W3C trace context travels in the
CloudEvents ``traceparent`` extension, written into the outbox row with the event. So one webhook
is one trace across router, sla and survey.

Off, the ``traceparent`` of a consumed event is still passed on unchanged to the events its
handler emits, and logs still carry its trace id: a trace can be followed in the logs for free.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.trace import SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from shared.logging import log_context

if TYPE_CHECKING:
    from fastapi import FastAPI
    from opentelemetry.sdk.trace import TracerProvider
    from sqlalchemy.ext.asyncio import AsyncEngine

    from shared.events import Envelope

log = logging.getLogger(__name__)

PROPAGATOR = TraceContextTextMapPropagator()
EXPORTER_VARIABLES = (
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_TRACES_EXPORTER",
)
# Probes and scrapes would drown the traces that matter.
EXCLUDED_URLS = "healthz,readyz,metrics,docs,openapi.json"


class TelemetryConfigError(ValueError):
    """An ``OTEL_*`` variable has a value ticketflow cannot use; the message names it."""


@dataclass
class _State:
    provider: TracerProvider | None = None


_state = _State()


def enabled() -> bool:
    """True when tracing is configured (``configure`` or ``enable`` ran)."""
    return _state.provider is not None


def wanted(environ: Mapping[str, str] | None = None) -> bool:
    """Whether the ``OTEL_*`` variables ask for traces to be exported."""
    env = os.environ if environ is None else environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporters = {e.strip() for e in env.get("OTEL_TRACES_EXPORTER", "").split(",") if e.strip()}
    if exporters == {"none"}:
        return False
    return bool(exporters) or any(env.get(name) for name in EXPORTER_VARIABLES[:2])


def configure(default_service_name: str) -> bool:
    """Set up tracing from the ``OTEL_*`` variables; does nothing when none asks for it.

    ``OTEL_SERVICE_NAME`` wins over ``default_service_name``; ``OTEL_TRACES_EXPORTER`` picks
    ``otlp`` (default, OTLP over HTTP/protobuf to ``OTEL_EXPORTER_OTLP_ENDPOINT``) and/or
    ``console``; ``OTEL_TRACES_SAMPLER``, ``OTEL_RESOURCE_ATTRIBUTES`` and the exporter's own
    variables are read by the SDK. Returns whether tracing is on.
    """
    if enabled():
        return True
    if not wanted():
        return False
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        ConsoleSpanExporter,
        SpanExporter,
    )

    attributes = {} if os.environ.get("OTEL_SERVICE_NAME") else {SERVICE_NAME: default_service_name}
    provider = TracerProvider(resource=Resource.create(attributes))
    names = [e.strip() for e in os.environ.get("OTEL_TRACES_EXPORTER", "otlp").split(",")]
    for name in filter(None, names):
        exporter: SpanExporter
        if name == "console":
            exporter = ConsoleSpanExporter()
        elif name == "otlp":
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            exporter = OTLPSpanExporter()
        elif name == "none":
            continue
        else:
            raise TelemetryConfigError(
                f"OTEL_TRACES_EXPORTER: {name!r} is not one of otlp, console, none"
            )
        provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    enable(provider)
    return True


def enable(provider: TracerProvider) -> None:
    """Trace with ``provider`` (``configure`` calls it; tests pass an in-memory exporter's)."""
    from opentelemetry.instrumentation.aiokafka import AIOKafkaInstrumentor
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    _state.provider = provider
    for instrumentor in (HTTPXClientInstrumentor(), AIOKafkaInstrumentor()):
        if not instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.instrument(tracer_provider=provider)


def disable() -> None:
    """Undo ``enable`` (tests)."""
    from opentelemetry.instrumentation.aiokafka import AIOKafkaInstrumentor
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    for instrumentor in (HTTPXClientInstrumentor(), AIOKafkaInstrumentor()):
        if instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.uninstrument()
    _state.provider = None


def shutdown() -> None:
    """Flush the spans still buffered (at process exit)."""
    if _state.provider is not None:
        _state.provider.shutdown()


def instrument_app(app: FastAPI) -> None:
    """A server span per HTTP request of ``app`` (when tracing is on)."""
    if _state.provider is None:
        return
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    FastAPIInstrumentor.instrument_app(
        app, tracer_provider=_state.provider, excluded_urls=EXCLUDED_URLS
    )


def instrument_engine(engine: AsyncEngine) -> None:
    """A client span per SQL statement on ``engine`` (when tracing is on)."""
    if _state.provider is None:
        return
    from opentelemetry.instrumentation.sqlalchemy import EngineTracer
    from opentelemetry.metrics import NoOpMeter

    counter = NoOpMeter("ticketflow").create_up_down_counter("db.client.connections.usage")
    tracer = _ChildSpansOnly(_state.provider.get_tracer("opentelemetry.instrumentation.sqlalchemy"))
    EngineTracer(tracer, engine.sync_engine, counter)


class _ChildSpansOnly(trace.Tracer):
    """Spans only inside another span: the background loops' polling queries (scheduler, sender,
    relay) would otherwise each be a trace of its own, thousands an hour."""

    def __init__(self, tracer: trace.Tracer) -> None:
        self._tracer = tracer

    def start_span(self, name: str, context: Any = None, *args: Any, **kwargs: Any) -> trace.Span:
        if not trace.get_current_span(context).get_span_context().is_valid:
            return trace.INVALID_SPAN
        return self._tracer.start_span(name, context, *args, **kwargs)

    @contextlib.contextmanager
    def start_as_current_span(  # type: ignore[override]
        self, name: str, context: Any = None, *args: Any, **kwargs: Any
    ) -> Iterator[trace.Span]:
        span = self.start_span(name, context, *args, **kwargs)
        with trace.use_span(span, end_on_exit=True):
            yield span


def current_traceparent(fallback: str | None = None) -> str | None:
    """The W3C ``traceparent`` to put on an event emitted now.

    The current span's when there is one (tracing on); else ``fallback`` (the consumed event's,
    passed on unchanged). Else, tracing on: None, and the consumer's handler span starts the
    trace (a made-up unsampled parent would keep it from being sampled); tracing off: a new
    trace id, not sampled, so logs can still tie the events of one request together.
    """
    if trace.get_current_span().get_span_context().is_valid:
        carrier: dict[str, str] = {}
        PROPAGATOR.inject(carrier)
        return carrier["traceparent"]
    if fallback:
        return fallback
    if _state.provider is not None:
        return None
    # What the SDK's RandomIdGenerator makes (random bits, never all zero), without building a
    # span and a context to format it: this runs for every event a request emits.
    trace_id = random.getrandbits(128) or 1
    span_id = random.getrandbits(64) or 1
    return f"00-{trace_id:032x}-{span_id:016x}-00"


def trace_id_of(traceparent: str | None) -> str | None:
    """The trace id (32 hex digits) of a W3C ``traceparent``, read by the propagator."""
    if not traceparent:
        return None
    context = trace.get_current_span(PROPAGATOR.extract({"traceparent": traceparent}))
    span_context = context.get_span_context()
    return format(span_context.trace_id, "032x") if span_context.is_valid else None


@contextlib.contextmanager
def handler_span(service: str, envelope: Envelope) -> Iterator[None]:
    """Around one event handler: a consumer span, child of the span that emitted the event.

    Tracing off: only the log context (ticket id and the event's trace id).
    """
    if _state.provider is None:
        with log_context(ticket_id=envelope.subject, trace_id=trace_id_of(envelope.traceparent)):
            yield
        return
    carrier = {"traceparent": envelope.traceparent} if envelope.traceparent else {}
    attributes: dict[str, Any] = {
        "messaging.operation.type": "process",
        "messaging.message.id": envelope.id,
        "cloudevents.event_id": envelope.id,
        "cloudevents.event_type": envelope.type,
        "cloudevents.event_source": envelope.source,
        "ticketflow.service": service,
    }
    if envelope.subject:
        attributes["cloudevents.event_subject"] = envelope.subject
    tracer = _state.provider.get_tracer(f"ticketflow.{service}")
    with (
        tracer.start_as_current_span(
            f"{service} process {envelope.type}",
            context=PROPAGATOR.extract(carrier),
            kind=SpanKind.CONSUMER,
            attributes=attributes,
        ),
        log_context(ticket_id=envelope.subject),
    ):
        yield


@contextlib.contextmanager
def sql_span(statement: str) -> Iterator[None]:
    """A client span around one statement sent on asyncpg directly (``shared.db.DriverPool``),
    like the ones SQLAlchemy's instrumentation makes for the engine's; only inside another span."""
    if _state.provider is None or not trace.get_current_span().get_span_context().is_valid:
        yield
        return
    tracer = _state.provider.get_tracer("ticketflow.db")
    name = statement.split(None, 1)[0].upper() if statement.strip() else "SQL"
    attributes = {"db.system.name": "postgresql", "db.query.text": statement}
    with tracer.start_as_current_span(name, kind=SpanKind.CLIENT, attributes=attributes):
        yield
