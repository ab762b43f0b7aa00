"""``POST /v1/goals/what-if``: replay a goal or an SLA policy over the recorded history.

Nothing is written. A goal is measured exactly as its bookkeeping would have measured it
(``service.measure``), per period. An SLA policy is replayed over each matching ticket's real
timeline: its timers start, pause (``pause_statuses``), resume, reopen and stop as sla's own
timers do (``services.sla.service``), and each stopped timer's business time is counted in the
target's calendar, holidays included.

Business time is looked up in a ``BusinessClock``: the calendar's opening spans over the
replayed range, with cumulative seconds, so each lookup is a binary search rather than a walk
over days; instants outside that range fall back to ``business_seconds_between``.
"""

from __future__ import annotations

import bisect
import json
import math
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from services.sla.calendar import BusinessCalendar, business_seconds_between, open_spans
from services.sla.goals import metrics, periods, projection, repository, service
from services.sla.goals.projection import Totals
from services.sla.schemas import SlaPolicyWrite
from services.sla.service import SlaContext
from shared.conditions import matches

MAX_RANGE_DAYS = 400
ATTAINABLE_SHARE = 0.8
# Timers may stop this long after the last ticket of the range was created.
CLOCK_TAIL = timedelta(days=120)
DONE = ("solved", "closed")
SLA_METRICS = ("first_response", "next_response", "resolution")


def check_range(start: datetime, end: datetime) -> None:
    if start >= end:
        raise service.invalid("from", "from must be before to")
    if end - start > timedelta(days=MAX_RANGE_DAYS):
        raise service.invalid("to", f"a what-if covers at most {MAX_RANGE_DAYS} days")


class BusinessClock:
    """Business seconds between instants of one calendar, precomputed over a range."""

    def __init__(self, calendar: BusinessCalendar, start: datetime, end: datetime) -> None:
        self.calendar = calendar
        self.start, self.end = start.timestamp(), end.timestamp()
        self.opens: list[float] = []
        self.closes: list[float] = []
        self.before: list[float] = []
        total = 0.0
        for opens, closes in open_spans(calendar, start):
            if opens >= end:
                break
            self.opens.append(opens.timestamp())
            self.closes.append(closes.timestamp())
            self.before.append(total)
            total += (closes - opens).total_seconds()

    def _position(self, t: float) -> float:
        i = bisect.bisect_right(self.opens, t) - 1
        if i < 0:
            return 0.0
        return self.before[i] + min(t, self.closes[i]) - self.opens[i]

    def between(self, a: float, b: float) -> float:
        if self.start <= a <= b <= self.end:
            return self._position(b) - self._position(a)
        return business_seconds_between(
            self.calendar, datetime.fromtimestamp(a, UTC), datetime.fromtimestamp(b, UTC)
        )


def _nearest_rank(values: Sequence[float], share: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def _rounded(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 1)


# --- goals --------------------------------------------------------------------------------------


async def goal_what_if(
    ctx: SlaContext, goal: service.GoalDef, start: datetime, end: datetime
) -> dict[str, Any]:
    measured = await service.measure(ctx, goal, start, end)
    zone = goal.zone
    covering = periods.periods_between(
        goal.period_kind,
        goal.period_days,
        periods.local_day(start, zone),
        periods.local_day(end - timedelta(microseconds=1), zone),
    )
    index = {p.start: i for i, p in enumerate(covering)}
    totals = [Totals() for _ in covering]
    values: list[list[float]] = [[] for _ in covering]
    for _ticket_id, sample in measured:
        day = periods.local_day(sample.completed_at, zone)
        period = periods.period_of(goal.period_kind, goal.period_days, day)
        if goal.period_kind == "rolling_days":
            # Rolling windows tile the range backwards from its last day.
            i = next((j for j, p in enumerate(covering) if p.start <= day < p.end), None)
        else:
            i = index.get(period.start)
        if i is None:
            continue
        totals[i].add(Totals(1, sample.good, sample.bad, sample.value))
        values[i].append(sample.value)
    rows = []
    needed_thresholds: list[float] = []
    reached: list[float] = []
    for period, total, samples in zip(covering, totals, values, strict=True):
        if total.samples == 0:
            continue
        quality = total.quality or 0.0
        value = projection.value_of(goal.metric, total)
        if value is not None:
            reached.append(value)
        rows.append(
            {
                "start": period.start_at(zone),
                "end": period.end_at(zone),
                "value": value,
                "sample_size": total.samples,
                "met": projection.is_met(goal.metric, quality, goal.target),
            }
        )
        if goal.metric in metrics.TIME_METRICS:
            # The smallest threshold that would have put target % of this period within it.
            needed_thresholds.append(_nearest_rank(samples, goal.target / 100.0) or 0.0)
    attainable = None
    if needed_thresholds:
        attainable = float(math.ceil(_nearest_rank(needed_thresholds, ATTAINABLE_SHARE) or 0.0))
    return {
        "periods": rows,
        "periods_with_data": len(rows),
        "periods_met": sum(1 for r in rows if r["met"]),
        "sample_size": sum(t.samples for t in totals),
        "attainable_threshold_seconds": attainable,
        "values_reached": {
            "min": min(reached) if reached else None,
            "median": _nearest_rank(reached, 0.5),
            "max": max(reached) if reached else None,
        },
    }


# --- SLA policies -------------------------------------------------------------------------------

Target = tuple[int, str | None]
Seconds = Callable[[str | None, float, float], float]


def replay_ticket(
    events: Sequence[Sequence[Any]],
    created: float,
    pauses: dict[str, frozenset[str]],
    targets: dict[tuple[str, str], Target],
    seconds: Seconds,
) -> tuple[list[tuple[str, float, bool]], list[str]]:
    """One ticket's timers under a policy: ``([(metric, business seconds, breached)], [metric
    of each timer still open])``.

    ``events`` are the stored ``[offset seconds, code, value]`` rows in time order, the first
    ones giving the status and priority at creation. A timer is ``[segments, running since]``
    (``None`` while paused): pauses, reopens and priority changes behave as sla's own timers."""
    status = "new"
    priority = "normal"
    index = 0
    while index < len(events) and events[index][0] == 0 and events[index][1] in ("s", "p"):
        if events[index][1] == "s":
            status = events[index][2]
        else:
            priority = events[index][2]
        index += 1
    running: dict[str, list[Any]] = {}
    stopped: list[tuple[str, list[tuple[float, float]], str]] = []
    if status not in DONE:
        for metric in ("first_response", "resolution"):
            running[metric] = [[], None if status in pauses[metric] else created]
    for offset, code, value in events[index:]:
        at = created + offset
        if code == "a":
            for metric in ("first_response", "next_response"):
                timer = running.pop(metric, None)
                if timer is not None:
                    if timer[1] is not None:
                        timer[0].append((timer[1], at))
                    stopped.append((metric, timer[0], priority))
        elif code == "c":
            if (
                status not in DONE
                and "first_response" not in running
                and "next_response" not in running
            ):
                paused = status in pauses["next_response"]
                running["next_response"] = [[], None if paused else at]
        elif code == "p":
            priority = value
        elif code == "s" and value != status:
            was, status = status, value
            if value in DONE and was not in DONE:
                for metric, timer in running.items():
                    if timer[1] is not None:
                        timer[0].append((timer[1], at))
                    stopped.append((metric, timer[0], priority))
                running.clear()
            elif value not in DONE and was in DONE:
                segments: list[tuple[float, float]] = []
                for i in range(len(stopped) - 1, -1, -1):
                    if stopped[i][0] == "resolution":
                        segments = stopped.pop(i)[1]
                        break
                paused = value in pauses["resolution"]
                running["resolution"] = [segments, None if paused else at]
            else:
                for metric, timer in running.items():
                    paused = value in pauses[metric]
                    if paused and timer[1] is not None:
                        timer[0].append((timer[1], at))
                        timer[1] = None
                    elif not paused and timer[1] is None:
                        timer[1] = at
    results = []
    for metric, segments, at_priority in stopped:
        target = targets.get((at_priority, metric))
        if target is None:
            continue
        minutes, calendar_id = target
        took = 0.0
        for a, b in segments:
            took += seconds(calendar_id, a, b)
        results.append((metric, took, took > minutes * 60 + 1e-6))
    return results, [m for m in running if (priority, m) in targets]


async def policy_what_if(
    ctx: SlaContext, body: SlaPolicyWrite, start: datetime, end: datetime
) -> dict[str, Any]:
    clocks: dict[str, BusinessClock | None] = {}
    for i, target in enumerate(body.targets):
        if target.calendar_id is None or target.calendar_id in clocks:
            continue
        calendar = await ctx.calendar(target.calendar_id)
        if calendar is None:
            raise service.invalid(
                f"sla_policy.targets.{i}.calendar_id", f"unknown calendar {target.calendar_id}"
            )
        clocks[target.calendar_id] = BusinessClock(
            calendar, start - timedelta(days=1), end + CLOCK_TAIL
        )
    targets: dict[tuple[str, str], Target] = {
        (t.priority, t.metric): (t.minutes, t.calendar_id) for t in body.targets
    }
    raw_pause: Any = body.pause_statuses

    def pause_for(metric: str) -> frozenset[str]:
        if isinstance(raw_pause, dict):
            return frozenset(raw_pause.get(metric, ()))
        return frozenset(raw_pause)

    pauses = {m: pause_for(m) for m in SLA_METRICS}
    conditional = bool(body.conditions.all or body.conditions.any)

    def seconds(calendar_id: str | None, a: float, b: float) -> float:
        clock = clocks.get(calendar_id) if calendar_id else None
        return b - a if clock is None else clock.between(a, b)

    tickets = matched = 0
    taken: dict[str, list[float]] = {m: [] for m in SLA_METRICS}
    breaches = dict.fromkeys(SLA_METRICS, 0)
    still_open = dict.fromkeys(SLA_METRICS, 0)
    async for chunk in repository.stream_replay_rows(ctx.session, start, end):
        for _ticket_id, created, document, events in chunk:
            tickets += 1
            if conditional and not matches(body.conditions, json.loads(document or "{}")):
                continue
            matched += 1
            results, open_timers = replay_ticket(
                json.loads(events), float(created), pauses, targets, seconds
            )
            for metric in open_timers:
                still_open[metric] += 1
            for metric, took, breached in results:
                taken[metric].append(took)
                breaches[metric] += int(breached)
    rows = []
    for metric in SLA_METRICS:
        if not any(m == metric for _, m in targets):
            continue
        count = len(taken[metric])
        rows.append(
            {
                "metric": metric,
                "timers": count,
                "met": count - breaches[metric],
                "breaches": breaches[metric],
                "open": still_open[metric],
                "compliance": None
                if count == 0
                else round(100.0 * (count - breaches[metric]) / count, 2),
                "median_seconds": _rounded(_nearest_rank(taken[metric], 0.5)),
                "p90_seconds": _rounded(_nearest_rank(taken[metric], 0.9)),
            }
        )
    return {"tickets": tickets, "tickets_matched": matched, "metrics": rows}
