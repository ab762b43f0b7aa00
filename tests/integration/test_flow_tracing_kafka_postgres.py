"""OpenTelemetry across real processes' plumbing: Kafka (the Tansu broker) and PostgreSQL.

Named to run before test_routing_race: after that test's two router instances leave, Tansu keeps
consumer group ``router`` rejoining for minutes, and no later test could consume as router.
"""

from __future__ import annotations

from contextlib import AsyncExitStack

from services.router.app import create_app as router_app
from services.sla.app import create_app as sla_app
from services.survey.app import create_app as survey_app
from tests.conftest import make_settings, running
from tests.intake_support import SECRET_SETTINGS
from tests.tracing_support import assert_one_webhook_is_one_trace, traced


async def test_one_webhook_is_one_trace_over_kafka_and_postgres(
    postgres_url: str, kafka_bootstrap: str
) -> None:
    settings = make_settings(
        postgres_url, kafka_bootstrap_servers=kafka_bootstrap, **SECRET_SETTINGS
    )
    with traced() as exporter:
        async with AsyncExitStack() as stack:
            router = await stack.enter_async_context(running(router_app(settings)))
            await stack.enter_async_context(running(sla_app(settings)))
            await stack.enter_async_context(running(survey_app(settings)))
            await assert_one_webhook_is_one_trace(router, exporter)
