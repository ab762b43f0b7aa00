"""OpenTelemetry: one webhook is one trace across the services (embedded mode), logs carry the
trace, and with no ``OTEL_*`` variable nothing is traced."""

from __future__ import annotations

import json
import logging
from contextlib import AsyncExitStack
from pathlib import Path

from opentelemetry import trace

from services.router.app import create_app as router_app
from services.sla.app import create_app as sla_app
from services.survey.app import create_app as survey_app
from shared import telemetry
from shared.bus import MemoryBus
from shared.events import TicketSolved, decode, encode
from shared.logging import JsonFormatter, _ContextFilter
from shared.migrate import upgrade_all
from tests.conftest import make_settings, running
from tests.intake_support import SECRET_SETTINGS
from tests.tracing_support import assert_one_webhook_is_one_trace, traced
from tests.unit.test_events import _snapshot as snapshot


async def test_one_webhook_is_one_trace_in_embedded_mode(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'ticketflow.db'}"
    await upgrade_all(url)
    settings = make_settings(url, **SECRET_SETTINGS)
    bus = MemoryBus(partitions=4, max_retries=1, retry_base_seconds=0.01)
    await bus.start()
    try:
        with traced() as exporter:
            async with AsyncExitStack() as stack:
                router = await stack.enter_async_context(running(router_app(settings, bus=bus)))
                await stack.enter_async_context(running(sla_app(settings, bus=bus)))
                await stack.enter_async_context(running(survey_app(settings, bus=bus)))
                await assert_one_webhook_is_one_trace(router, exporter)
    finally:
        await bus.stop()


def test_tracing_is_off_without_otel_variables() -> None:
    assert not telemetry.wanted({})
    assert not telemetry.wanted({"OTEL_SERVICE_NAME": "x", "OTEL_TRACES_EXPORTER": "none"})
    assert not telemetry.wanted(
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "true"}
    )
    assert telemetry.wanted({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"})
    assert telemetry.wanted({"OTEL_TRACES_EXPORTER": "console"})
    assert not telemetry.enabled()
    assert trace.get_current_span().get_span_context().is_valid is False


def test_untraced_events_still_carry_and_pass_on_a_trace_context() -> None:
    # Off: an event gets a fresh (unsampled) context, and a handler passes it on unchanged.
    _, value, _ = encode(TicketSolved(ticket=snapshot()), source="/ticketflow/router")
    first = decode(value).traceparent
    assert first is not None and first.endswith("-00")
    assert telemetry.current_traceparent(fallback=first) == first
    assert telemetry.trace_id_of(first) == first.split("-")[1]
    assert telemetry.trace_id_of("garbage") is None


def test_log_lines_carry_the_current_trace_and_span() -> None:
    record = logging.LogRecord("t", logging.INFO, __file__, 1, "hello", None, None)
    with traced():
        tracer = telemetry._state.provider.get_tracer("test")  # type: ignore[union-attr]
        with tracer.start_as_current_span("work") as span:
            _ContextFilter().filter(record)
            # The event emitted inside the span carries it, sampled.
            _, value, _ = encode(TicketSolved(ticket=snapshot()), source="/ticketflow/router")
    line = json.loads(JsonFormatter().format(record))
    assert line["trace_id"] == format(span.get_span_context().trace_id, "032x")
    assert line["span_id"] == format(span.get_span_context().span_id, "016x")
    traceparent = decode(value).traceparent or ""
    assert traceparent.startswith(f"00-{line['trace_id']}-{line['span_id']}-")
    assert int(traceparent[-2:], 16) & 1  # sampled
