"""Service goals on PostgreSQL (migrated with the real Alembic migrations) and the real
Kafka-protocol broker: the same scenarios as the embedded tests, each on a database of its own."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from services.sla.app import create_app
from shared.bus import KafkaBus
from tests.conftest import make_settings, running
from tests.goals_scenarios import (
    MONDAY,
    scenario_bad_input,
    scenario_business_time_dst_week,
    scenario_known_share,
    scenario_redelivery_and_late_answers,
    scenario_sla_compliance_of_router_solves,
    scenario_status_events,
)
from tests.goals_support import Desk, FakeClock


@pytest.fixture
async def desk(
    fresh_database: Callable[[], Awaitable[str]], kafka_bootstrap: str
) -> AsyncIterator[Desk]:
    url = await fresh_database()
    settings = make_settings(url, kafka_bootstrap_servers=kafka_bootstrap)
    bus = KafkaBus(kafka_bootstrap, client_id="test-goals", partitions=4)
    await bus.start()
    await bus.ensure_topics([settings.topic(t) for t in ("tickets", "surveys", "sla")])
    clock = FakeClock(MONDAY)
    app = create_app(settings, clock=clock)
    async with running(app) as client:
        yield Desk(
            client, app.state.runtime, clock, bus, settings, prefix=f"api:g{uuid.uuid4().hex[:6]}"
        )
    await bus.stop()


async def test_known_share_on_postgres_and_kafka(desk: Desk) -> None:
    await scenario_known_share(desk)  # 203 of 250 chats within a minute: 81.2 %


async def test_redelivery_and_late_answers_on_postgres_and_kafka(desk: Desk) -> None:
    await scenario_redelivery_and_late_answers(desk)


async def test_status_events_on_postgres_and_kafka(desk: Desk) -> None:
    await scenario_status_events(desk)


async def test_business_time_dst_week_on_postgres_and_kafka(desk: Desk) -> None:
    await scenario_business_time_dst_week(desk)


async def test_sla_compliance_of_router_solves_on_postgres_and_kafka(desk: Desk) -> None:
    await scenario_sla_compliance_of_router_solves(desk)


async def test_bad_input_on_postgres(desk: Desk) -> None:
    await scenario_bad_input(desk)
