"""One way to open and commit a unit of work, and typed per-process state."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from services.sla import admin
from services.sla.app import create_app
from services.sla.models import CalendarRow
from services.sla.scheduler import SchedulerState, wake_scheduler
from services.sla.service import SlaContext
from shared.bus import MemoryBus
from shared.migrate import upgrade_all
from shared.runtime import ServiceRuntime
from tests.conftest import make_settings, running


@pytest.fixture
async def sla(tmp_path: Path) -> AsyncIterator[tuple[ServiceRuntime, httpx.AsyncClient]]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'uow.db'}"
    await upgrade_all(url)
    bus = MemoryBus(partitions=1, max_retries=1, retry_base_seconds=0.01)
    await bus.start()
    app = create_app(make_settings(url), bus=bus)
    async with running(app) as client:
        yield app.state.runtime, client
    await bus.stop()


def _calendar(calendar_id: str) -> CalendarRow:
    now = datetime(2026, 11, 30, tzinfo=UTC)
    return CalendarRow(
        id=calendar_id,
        name="c",
        timezone="UTC",
        hours={},
        holidays=[],
        created_at=now,
        updated_at=now,
    )


async def test_unit_of_work_commits_at_the_end_then_runs_after_commit(
    sla: tuple[ServiceRuntime, httpx.AsyncClient],
) -> None:
    runtime, _ = sla
    ran: list[str] = []
    async with runtime.unit_of_work(SlaContext) as ctx:
        assert isinstance(ctx, SlaContext) and ctx.runtime is runtime
        ctx.session.add(_calendar("committed"))
        ctx.after_commit.append(lambda: ran.append("after"))
        assert ran == [], "callbacks wait for the commit"
    assert ran == ["after"]
    async with runtime.sessionmaker() as session:
        assert await session.get(CalendarRow, "committed") is not None


async def test_unit_of_work_rolls_back_on_error_and_skips_after_commit(
    sla: tuple[ServiceRuntime, httpx.AsyncClient],
) -> None:
    runtime, _ = sla
    ran: list[str] = []
    with pytest.raises(RuntimeError):
        async with runtime.unit_of_work(SlaContext) as ctx:
            ctx.session.add(_calendar("rolled-back"))
            await ctx.session.flush()
            ctx.after_commit.append(lambda: ran.append("after"))
            raise RuntimeError("boom")
    assert ran == []
    async with runtime.sessionmaker() as session:
        assert await session.get(CalendarRow, "rolled-back") is None


async def test_request_is_one_unit_of_work_of_the_service_class(
    sla: tuple[ServiceRuntime, httpx.AsyncClient],
) -> None:
    runtime, client = sla
    assert runtime.unit_of_work_class is SlaContext
    created = await client.post(
        "/v1/sla-policies",
        json={"name": "p", "targets": [{"priority": "low", "metric": "resolution", "minutes": 5}]},
    )
    assert created.status_code == 201, created.text
    # Committed before the answer: the next request sees it.
    assert (await client.get(f"/v1/sla-policies/{created.json()['id']}")).status_code == 200


async def test_retiming_wakes_the_scheduler_after_commit_through_typed_state(
    sla: tuple[ServiceRuntime, httpx.AsyncClient],
) -> None:
    runtime, _ = sla
    state = runtime.state_of(SchedulerState)
    assert runtime.state_of(SchedulerState) is state, "one instance per process"
    async with runtime.unit_of_work(SlaContext) as ctx:
        await admin.recompute_open_timers(ctx)
        assert len(ctx.after_commit) == 1, "the wake-up waits for the commit"


async def test_a_timer_wakes_the_scheduler_only_when_due_before_it_looks_again(
    sla: tuple[ServiceRuntime, httpx.AsyncClient],
) -> None:
    runtime, _ = sla
    state = runtime.state_of(SchedulerState)
    now = runtime.clock.now()
    # (No await below: the running loop cannot change the state between these lines.)
    state.wake.clear()
    state.next_look = now + timedelta(seconds=1)
    wake_scheduler(runtime, now + timedelta(minutes=45))  # a new ticket's first warning
    assert not state.wake.is_set(), "the loop looks again within the second anyway"
    wake_scheduler(runtime, now + timedelta(milliseconds=300))
    assert state.wake.is_set(), "due before the loop's next look"
    state.wake.clear()
    wake_scheduler(runtime, now - timedelta(seconds=5))
    assert state.wake.is_set(), "already due (a late event)"
    state.wake.clear()
    state.next_look = None  # the loop is awake: it reads the timers after this anyway
    wake_scheduler(runtime, now + timedelta(minutes=45))
    assert state.wake.is_set()
    state.wake.clear()
    state.next_look = now + timedelta(seconds=1)
    wake_scheduler(runtime)  # a policy or calendar change: always
    assert state.wake.is_set()
