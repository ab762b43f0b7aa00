"""Announces goal status changes: ``goal.at_risk``, ``goal.missed``, ``goal.met``,
``goal.recovered``, each once per change.

A background loop evaluates every goal when bookkeeping woke it (a sample moved) and at least
every ``WATCH_SECONDS`` (time alone moves a goal: a period ends, the projection shifts). The last
announced status and its period are kept on the goal row, locked while evaluated, so several
sla instances announce each change once. When a period ends, its final ``met`` or ``missed`` is
announced before the new period is looked at.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from services.sla.goals import attainment, periods, repository
from services.sla.goals.models import Goal
from services.sla.goals.service import GoalDef
from services.sla.service import SlaContext
from shared import events as ev
from shared.clock import wait_for_wake
from shared.runtime import ServiceRuntime

WATCH_SECONDS = 30.0
# At most one evaluation a second however busy the event stream is (wall-clock pacing).
MIN_INTERVAL_SECONDS = 1.0
EVENTS: dict[str, type[ev.GoalEvent]] = {
    "at_risk": ev.GoalAtRisk,
    "missed": ev.GoalMissed,
    "met": ev.GoalMet,
    "recovered": ev.GoalRecovered,
}


@dataclass
class WatchState:
    """The process's watcher: its wake-up and the lock that keeps evaluations one at a time."""

    wake: asyncio.Event = field(default_factory=asyncio.Event)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


def wake(runtime: ServiceRuntime) -> None:
    runtime.state_of(WatchState).wake.set()


def transition(previous: str | None, current: str) -> str | None:
    """The event a change of status announces, if any."""
    if previous == current:
        return None
    if current in ("at_risk", "missed", "met"):
        return current
    if current == "on_track" and previous in ("at_risk", "missed"):
        return "recovered"
    return None


async def _emit(
    ctx: SlaContext,
    kind: str,
    row: Goal,
    result: attainment.Attainment,
    previous: str | None,
    status: str,
    now: datetime,
) -> None:
    await ctx.emit(
        EVENTS[kind](
            goal_id=row.id,
            name=row.name,
            metric=row.metric,
            status=status,
            previous_status=previous,
            period_start=result.period_start,
            period_end=result.period_end,
            value=result.value,
            target=row.target,
            sample_size=result.totals.samples,
            projection={
                "value": result.projection.value,
                "low": result.projection.low,
                "high": result.projection.high,
            },
            needed=result.projection.needed,
            evaluated_at=now,
        )
    )


async def evaluate(ctx: SlaContext, row: Goal, now: datetime) -> str | None:
    """Evaluate one (locked) goal; returns the event type announced, if any."""
    goal = GoalDef.of(row)
    previous = row.last_status
    today = periods.local_day(now, goal.zone)
    current = periods.period_of(goal.period_kind, goal.period_days, today)
    settled = row.last_period_start
    # A rolling window moves every day and never ends: its status just carries on.
    if settled is not None and settled != current.start and goal.period_kind != "rolling_days":
        if previous not in ("met", "missed"):
            # The announced period is over: settle it first, then start the new one afresh.
            old = periods.period_of(goal.period_kind, goal.period_days, settled)
            ended = await attainment.attainment(
                ctx.session, goal, old.end_at(goal.zone), old.end - timedelta(days=1)
            )
            if ended.status in ("met", "missed"):
                await _emit(ctx, ended.status, row, ended, previous, ended.status, now)
        previous = None
    result = await attainment.attainment(ctx.session, goal, now)
    kind = transition(previous, result.status)
    if kind is not None:
        await _emit(ctx, kind, row, result, previous, result.status, now)
    row.last_status = result.status
    row.last_period_start = result.period.start
    return kind


async def evaluate_goals(runtime: ServiceRuntime) -> list[tuple[str, str]]:
    """Evaluate every goal once; returns ``(goal id, event type)`` announced. Tests call it."""
    lock = runtime.state_of(WatchState).lock
    announced: list[tuple[str, str]] = []
    async with lock, runtime.transaction() as session:
        ctx = SlaContext.for_session(session, runtime)
        now = runtime.clock.now()
        for goal in await repository.list_goals(session):
            row = await repository.get_goal(session, goal.id, for_update=True)
            if row is None:
                continue
            kind = await evaluate(ctx, row, now)
            if kind is not None:
                announced.append((row.id, f"goal.{kind}"))
    return announced


async def run_goal_watch(runtime: ServiceRuntime) -> None:
    wake_event = runtime.state_of(WatchState).wake
    while True:
        wake_event.clear()
        await evaluate_goals(runtime)
        await asyncio.sleep(MIN_INTERVAL_SECONDS)
        await wait_for_wake(wake_event, WATCH_SECONDS - MIN_INTERVAL_SECONDS)
