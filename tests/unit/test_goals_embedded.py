"""Service goals on the embedded stack: SQLite and the in-memory bus, a fake clock."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from services.sla.app import create_app
from shared.bus import MemoryBus
from shared.migrate import upgrade
from tests.conftest import make_settings, running
from tests.goals_support import (
    MONDAY,
    Desk,
    FakeClock,
    scenario_bad_input,
    scenario_business_time_dst_week,
    scenario_known_share,
    scenario_redelivery_and_late_answers,
    scenario_status_events,
)


@pytest.fixture
async def desk(tmp_path: Path) -> AsyncIterator[Desk]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'tf.db'}"
    await asyncio.to_thread(upgrade, "sla", url)
    settings = make_settings(url)
    clock = FakeClock(MONDAY)
    bus = MemoryBus(partitions=4, max_retries=1, retry_base_seconds=0.01)
    await bus.start()
    app = create_app(settings, bus=bus, clock=clock)
    async with running(app) as client:
        yield Desk(client, app.state.runtime, clock, bus, settings)
    await bus.stop()


async def test_known_share_incremental_backfill_and_what_if(desk: Desk) -> None:
    await scenario_known_share(desk)


async def test_redelivered_events_once_and_late_answers(desk: Desk) -> None:
    await scenario_redelivery_and_late_answers(desk)


async def test_status_changes_announced_once(desk: Desk) -> None:
    await scenario_status_events(desk)


async def test_business_time_across_a_dst_week(desk: Desk) -> None:
    await scenario_business_time_dst_week(desk)


async def test_bad_input_names_the_field_and_saves_nothing(desk: Desk) -> None:
    await scenario_bad_input(desk)
