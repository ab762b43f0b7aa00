"""A goal's attainment for the period containing an instant, read from the day buckets only.

One query reads the buckets of the current period and of ``PREVIOUS`` periods before it; the
rest is arithmetic (``projection``). No ticket is read.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.sla.goals import periods, projection, repository
from services.sla.goals.projection import Totals
from services.sla.goals.service import GoalDef

PREVIOUS = 6


@dataclass(frozen=True)
class Attainment:
    goal: GoalDef
    period: periods.Period
    period_start: datetime
    period_end: datetime
    totals: Totals
    value: float | None
    status: str
    projection: projection.Projection
    trend: list[dict[str, Any]]
    previous: list[dict[str, Any]]

    def read(self) -> dict[str, Any]:
        """The contract's ``GET /v1/goals/{id}/attainment`` body."""
        return {
            "goal_id": self.goal.id,
            "period": {"start": self.period_start, "end": self.period_end},
            "value": self.value,
            "target": self.goal.target,
            "sample_size": self.totals.samples,
            "met_count": self.totals.good,
            "status": self.status,
            "projection": {
                "value": self.projection.value,
                "low": self.projection.low,
                "high": self.projection.high,
            },
            "needed": self.projection.needed,
            "trend": self.trend,
            "previous": self.previous,
        }


def _sum(buckets: dict[date, Totals], period: periods.Period) -> Totals:
    total = Totals()
    for day in period.days():
        if day in buckets:
            total.add(buckets[day])
    return total


def compute(
    goal: GoalDef, at: datetime, buckets: dict[date, Totals], day: date | None = None
) -> Attainment:
    """Pure: the attainment of ``goal`` at ``at`` given its buckets around that period (the
    period containing local ``day``, by default the day of ``at``)."""
    zone = goal.zone
    today = day or periods.local_day(at, zone)
    period = periods.period_of(goal.period_kind, goal.period_days, today)
    before = periods.previous_periods(goal.period_kind, goal.period_days, period, PREVIOUS)
    start_at, end_at = period.start_at(zone), period.end_at(zone)
    ended = at >= end_at
    visible = {d: t for d, t in buckets.items() if d <= today} if not ended else buckets
    current = _sum(visible, period)
    history: list[list[int]] = []
    prior = Totals()
    previous: list[dict[str, Any]] = []
    for old in before:
        totals = _sum(buckets, old)
        if totals.samples == 0:
            continue
        value = projection.value_of(goal.metric, totals)
        previous.append(
            {
                "start": old.start_at(zone),
                "end": old.end_at(zone),
                "value": value,
                "met": projection.is_met(goal.metric, totals.quality or 0.0, goal.target),
            }
        )
    for old in before[-projection.HISTORY :]:
        totals = _sum(buckets, old)
        if totals.samples:
            prior.add(totals)
            history.append([buckets[d].samples if d in buckets else 0 for d in old.days()])
    if ended:
        projected = projection.Projection(
            projection.value_of(goal.metric, current), None, None, None
        )
        if current.samples:
            projected = projection.Projection(
                projected.value, projected.value, projected.value, None
            )
    else:
        # In UTC: instants in one zone subtract as wall-clock times (a 25-hour day would be 24).
        day_start = periods.utc(periods.local_midnight(today, zone))
        day_end = periods.utc(periods.local_midnight(today + timedelta(days=1), zone))
        fraction_left = max(0.0, min(1.0, (day_end - at) / (day_end - day_start)))
        remaining = projection.expected_remaining(
            (today - period.start).days,
            fraction_left,
            len(period.days()),
            history,
            current.samples,
        )
        projected = projection.project(goal.metric, goal.target, current, prior, remaining)
    trend = []
    for day in period.days():
        if day > today:
            break
        totals = visible.get(day, Totals())
        trend.append(
            {
                "date": day.isoformat(),
                "value": projection.value_of(goal.metric, totals),
                "sample_size": totals.samples,
            }
        )
    return Attainment(
        goal=goal,
        period=period,
        period_start=start_at,
        period_end=end_at,
        totals=current,
        value=projection.value_of(goal.metric, current),
        status=projection.status_of(goal.metric, goal.target, current, ended, projected),
        projection=projected,
        trend=trend,
        previous=previous,
    )


async def attainment(
    session: AsyncSession, goal: GoalDef, at: datetime, day: date | None = None
) -> Attainment:
    day = day or periods.local_day(at, goal.zone)
    period = periods.period_of(goal.period_kind, goal.period_days, day)
    first = periods.previous_periods(goal.period_kind, goal.period_days, period, PREVIOUS)[0]
    buckets = await repository.bucket_totals(session, goal.id, first.start, period.end)
    return compute(goal, at, buckets, day)


async def assessment(
    session: AsyncSession, goal: GoalDef, at: datetime, count: int
) -> dict[str, Any]:
    """The goal measured over ``count`` periods before the one containing ``at`` (those with
    data): the "is it attainable?" check when a goal is set."""
    zone = goal.zone
    period = periods.period_of(goal.period_kind, goal.period_days, periods.local_day(at, zone))
    before = periods.previous_periods(goal.period_kind, goal.period_days, period, count)
    buckets = await repository.bucket_totals(session, goal.id, before[0].start, period.start)
    found = []
    for old in before:
        totals = _sum(buckets, old)
        if totals.samples == 0:
            continue
        found.append(
            {
                "start": old.start_at(zone),
                "end": old.end_at(zone),
                "value": projection.value_of(goal.metric, totals),
                "sample_size": totals.samples,
                "met": projection.is_met(goal.metric, totals.quality or 0.0, goal.target),
            }
        )
    return {
        "periods": found,
        "periods_with_data": len(found),
        "periods_met": sum(1 for p in found if p["met"]),
    }


async def board(session: AsyncSession, now: datetime) -> list[dict[str, Any]]:
    """Every goal with its attainment for the period containing ``now``, as
    ``/v1/goals/summary`` lists them plus the whole ``attainment`` (trend, previous periods):
    what a dashboard shows."""
    items = []
    for row in await repository.list_goals(session):
        result = (await attainment(session, GoalDef.of(row), now)).read()
        items.append(
            {
                "goal_id": row.id,
                "name": row.name,
                "metric": row.metric,
                "period": result["period"],
                "value": result["value"],
                "target": row.target,
                "sample_size": result["sample_size"],
                "status": result["status"],
                "projection": result["projection"],
                "needed": result["needed"],
                "attainment": result,
            }
        )
    return items
