"""OpenTelemetry: one webhook is one trace across the services (embedded mode), logs carry the
trace, and with no ``OTEL_*`` variable nothing is traced."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
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


def test_apps_are_not_instrumented_while_tracing_is_off(tmp_path: Path) -> None:
    assert not telemetry.configure("ticketflow-test")  # no OTEL_* variable in the test run
    app = router_app(make_settings(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}"))
    assert all("OpenTelemetry" not in str(m.cls) for m in app.user_middleware)


def _run(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    return subprocess.run(
        [sys.executable, "-c", code],
        env={**environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_otel_variables_configure_an_exporter() -> None:
    code = (
        "from shared import telemetry\n"
        "assert telemetry.configure('ticketflow-test')\n"
        "with telemetry._state.provider.get_tracer('t').start_as_current_span('hello'):\n"
        "    pass\n"
        "telemetry.shutdown()\n"
    )
    done = _run(code, OTEL_TRACES_EXPORTER="console", OTEL_SERVICE_NAME="from-env")
    assert done.returncode == 0, done.stderr
    span = json.loads(done.stdout)
    assert span["name"] == "hello"
    assert span["resource"]["attributes"]["service.name"] == "from-env"


def test_a_bad_otel_variable_stops_start_up_with_one_line() -> None:
    code = "import sys; from services.cli import main; sys.exit(main(['serve', 'router']))"
    done = _run(
        code, OTEL_TRACES_EXPORTER="zipkin", TICKETFLOW_KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:1"
    )
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "ticketflow: OTEL_TRACES_EXPORTER: 'zipkin' is not one of otlp, console, none"
    )


def test_an_event_emitted_outside_any_span_starts_its_own_trace() -> None:
    # Tracing on, no current span (a background task): no made-up parent, which would be
    # unsampled and drop the whole trace downstream.
    with traced():
        _, value, _ = encode(TicketSolved(ticket=snapshot()), source="/ticketflow/sla")
        assert telemetry.current_traceparent(fallback="00-" + "1" * 32 + "-" + "2" * 16 + "-01")
    assert decode(value).traceparent is None


async def test_sql_outside_any_span_is_not_traced(tmp_path: Path) -> None:
    from sqlalchemy import text

    from shared.db import create_engine

    with traced() as exporter:
        engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}", "router")
        telemetry.instrument_engine(engine)
        tracer = telemetry._state.provider.get_tracer("test")  # type: ignore[union-attr]
        try:
            async with engine.connect() as connection:
                await connection.execute(text("SELECT 1"))  # a background poll: no span
                with tracer.start_as_current_span("handler") as handler:
                    await connection.execute(text("SELECT 2"))
        finally:
            await engine.dispose()
    sql = [s for s in exporter.get_finished_spans() if s.name != "handler"]
    assert [s.attributes["db.statement"] for s in sql] == ["SELECT 2"]  # type: ignore[index]
    assert sql[0].parent is not None
    assert sql[0].parent.span_id == handler.get_span_context().span_id
