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

import orjson

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

    def between(self, a: float, b: float) -> float:
        """Business seconds from ``a`` to ``b`` (epoch seconds, ``a <= b``): two binary
        searches inside the range, the calendar's own arithmetic outside it."""
        if self.start <= a <= b <= self.end:
            opens, closes, before = self.opens, self.closes, self.before
            i = bisect.bisect_right(opens, b) - 1
            if i < 0:
                return 0.0
            close = closes[i]
            position_b = before[i] + (b if b < close else close) - opens[i]
            i = bisect.bisect_right(opens, a) - 1
            if i < 0:
                return position_b
            close = closes[i]
            return position_b - (before[i] + (a if a < close else close) - opens[i])
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

Seconds = Callable[[float, float], float]


class PolicyReplay:
    """One SLA policy replayed over ticket timelines, tallied per metric as it goes.

    ``targets`` maps ``(priority, metric)`` to ``(minutes, clock)``, the clock ``None`` for
    elapsed time. Each ticket's timers start, pause (``pauses`` per metric), resume, reopen and
    stop as sla's own timers do (``services.sla.service``); a timer counts against the target
    of the priority the ticket has when it stops. Nothing per event outlives the ticket: a
    timer is its spans as a flat list ``[from, to, from, to...]`` and the instant it runs since
    (``None`` while paused)."""

    def __init__(
        self,
        targets: dict[tuple[str, str], tuple[int, BusinessClock | None]],
        pauses: dict[str, frozenset[str]],
    ) -> None:
        # Business seconds beyond the limit breach (the epsilon forgives float rounding).
        self.limits: dict[tuple[str, str], tuple[float, Seconds | None]] = {
            key: (minutes * 60 + 1e-6, None if clock is None else clock.between)
            for key, (minutes, clock) in targets.items()
        }
        self.pauses = pauses
        self.taken: dict[str, list[float]] = {m: [] for m in SLA_METRICS}
        self.breaches = dict.fromkeys(SLA_METRICS, 0)
        self.open = dict.fromkeys(SLA_METRICS, 0)

    def ticket(self, created: float, events: Sequence[Sequence[Any]]) -> None:
        """Replay one ticket: ``events`` are its stored ``[offset seconds, code, value]`` rows
        in time order, the first ones (at offset 0) giving its status and priority at
        creation."""
        pauses = self.pauses
        status = "new"
        priority = "normal"
        count = len(events)
        index = 0
        while index < count:
            offset, code, value = events[index]
            if offset != 0 or (code != "s" and code != "p"):
                break
            if code == "s":
                status = value
            else:
                priority = value
            index += 1
        # metric -> [spans, running since]; stopped: (metric, spans, priority at the stop).
        running: dict[str, list[Any]] = {}
        stopped: list[tuple[str, list[float], str]] = []
        if status not in DONE:
            for metric in ("first_response", "resolution"):
                running[metric] = [[], None if status in pauses[metric] else created]
        while index < count:
            offset, code, value = events[index]
            index += 1
            at = created + offset
            if code == "a":
                for metric in ("first_response", "next_response"):
                    timer = running.pop(metric, None)
                    if timer is not None:
                        if timer[1] is not None:
                            timer[0] += (timer[1], at)
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
                            timer[0] += (timer[1], at)
                        stopped.append((metric, timer[0], priority))
                    running.clear()
                elif value not in DONE and was in DONE:
                    spans: list[float] = []
                    for i in range(len(stopped) - 1, -1, -1):
                        if stopped[i][0] == "resolution":
                            spans = stopped.pop(i)[1]
                            break
                    paused = value in pauses["resolution"]
                    running["resolution"] = [spans, None if paused else at]
                else:
                    for metric, timer in running.items():
                        paused = value in pauses[metric]
                        if paused and timer[1] is not None:
                            timer[0] += (timer[1], at)
                            timer[1] = None
                        elif not paused and timer[1] is None:
                            timer[1] = at
        limits = self.limits
        for metric, spans, at_priority in stopped:
            limit = limits.get((at_priority, metric))
            if limit is None:
                continue
            most, between = limit
            took = 0.0
            if between is None:
                for i in range(0, len(spans), 2):
                    took += spans[i + 1] - spans[i]
            else:
                for i in range(0, len(spans), 2):
                    took += between(spans[i], spans[i + 1])
            self.taken[metric].append(took)
            if took > most:
                self.breaches[metric] += 1
        for metric in running:
            if (priority, metric) in limits:
                self.open[metric] += 1

    def metrics(self) -> list[dict[str, Any]]:
        """Per metric with a target: timers, met, breaches, still open, compliance, median
        and p90."""
        rows = []
        for metric in SLA_METRICS:
            if not any(m == metric for _, m in self.limits):
                continue
            taken, breaches = self.taken[metric], self.breaches[metric]
            count = len(taken)
            taken.sort()
            rows.append(
                {
                    "metric": metric,
                    "timers": count,
                    "met": count - breaches,
                    "breaches": breaches,
                    "open": self.open[metric],
                    "compliance": None
                    if count == 0
                    else round(100.0 * (count - breaches) / count, 2),
                    "median_seconds": _rounded(_nearest_rank(taken, 0.5)),
                    "p90_seconds": _rounded(_nearest_rank(taken, 0.9)),
                }
            )
        return rows


async def policy_what_if(
    ctx: SlaContext, body: SlaPolicyWrite, start: datetime, end: datetime
) -> dict[str, Any]:
    clocks: dict[str, BusinessClock] = {}
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
    raw_pause: Any = body.pause_statuses

    def pause_for(metric: str) -> frozenset[str]:
        if isinstance(raw_pause, dict):
            return frozenset(raw_pause.get(metric, ()))
        return frozenset(raw_pause)

    replay = PolicyReplay(
        {
            (t.priority, t.metric): (t.minutes, clocks.get(t.calendar_id or ""))
            for t in body.targets
        },
        {m: pause_for(m) for m in SLA_METRICS},
    )
    conditions = body.conditions
    conditional = bool(conditions.all or conditions.any)
    tickets = matched = 0
    async for batch in repository.stream_replay_rows(
        ctx.session, start, end, with_document=conditional
    ):
        tickets += len(batch)
        if conditional:
            for created, events, document in batch:
                # The standard library's reading: orjson would turn a custom field beyond 64
                # bits into a float, which an equality condition on it would then miss.
                if matches(conditions, json.loads(document or "{}")):
                    matched += 1
                    replay.ticket(created, orjson.loads(events))
        else:
            matched += len(batch)
            for created, events in batch:
                replay.ticket(created, orjson.loads(events))
    return {"tickets": tickets, "tickets_matched": matched, "metrics": replay.metrics()}
