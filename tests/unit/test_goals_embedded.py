"""Service goals on the embedded stack: SQLite and the in-memory bus, a fake clock."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from services.sla.app import create_app
from shared.bus import MemoryBus
from shared.migrate import upgrade
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


async def test_sla_compliance_counts_solves_as_router_announces_them(desk: Desk) -> None:
    await scenario_sla_compliance_of_router_solves(desk)


async def test_bad_input_names_the_field_and_saves_nothing(desk: Desk) -> None:
    await scenario_bad_input(desk)


async def test_survey_scores_known_by_construction(desk: Desk) -> None:
    """NPS 50 promoters, 30 passives, 20 detractors = 30; CES 7 of 10 answers 5-7 = 70 %."""
    nps = await desk.goal(
        name="NPS", metric="nps", target=25, period={"kind": "month"}, timezone="UTC"
    )
    ces = await desk.goal(
        name="CES", metric="ces", target=75, period={"kind": "month"}, timezone="UTC"
    )
    at = MONDAY + timedelta(hours=1)
    for i, score in enumerate([10] * 50 + [7] * 30 + [3] * 20):
        await desk.answered(f"api:nps-{i}", f"nps-{i}", "nps", score, at + timedelta(seconds=i))
    for i, score in enumerate([7, 6, 5, 5, 6, 7, 5, 1, 2, 4]):
        await desk.answered(f"api:ces-{i}", f"ces-{i}", "ces", score, at + timedelta(seconds=i))
    desk.clock.current = MONDAY + timedelta(days=1)
    assert (await desk.settled(nps["id"], 100))["value"] == 30.0
    result = await desk.settled(ces["id"], 10)
    assert (result["value"], result["met_count"]) == (70.0, 7)
    # No history: the pace so far (10 answers in 2 days 9 hours) goes on for the 27 days
    # 15 hours left, R = 10 * 27.625 / 2.375; at 70 % the month ends below 75 %: at risk, and
    # (75 % of (10 + R) - 7) / R of the rest must be easy.
    remaining = 10 * 27.625 / 2.375
    assert result["status"] == "at_risk"
    assert result["projection"]["value"] == 70.0
    assert result["needed"] == pytest.approx(
        100 * (0.75 * (10 + remaining) - 7) / remaining, abs=0.01
    )


async def test_a_goal_changed_elsewhere_is_used_by_the_next_event(desk: Desk) -> None:
    """sla keeps the goal list in memory behind the goal revision: a scope changed (by any
    process) is what the very next event is measured against."""
    from tests.goals_support import chat_goal

    goal = await desk.goal(**chat_goal())
    chat = f"{desk.prefix}cached-chat"
    await desk.created(chat, MONDAY)
    await desk.message(chat, MONDAY + timedelta(seconds=10))
    assert (await desk.settled(goal["id"], 1))["met_count"] == 1  # the list is now cached
    changed = await desk.client.put(
        f"/v1/goals/{goal['id']}", json=chat_goal(scope={"channel": ["email"]})
    )
    assert changed.status_code == 200, changed.text
    assert (await desk.attainment(goal["id"]))["sample_size"] == 0  # re-measured: no email yet
    email = f"{desk.prefix}cached-email"
    await desk.created(email, MONDAY + timedelta(minutes=1), channel="email")
    await desk.message(email, MONDAY + timedelta(minutes=3))
    result = await desk.settled(goal["id"], 1)
    assert (result["sample_size"], result["met_count"]) == (1, 0)  # 120 s: not within 60 s
