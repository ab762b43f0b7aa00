"""Goal rules: validation, saving with a backfill and assessment, and sample bookkeeping.

Bookkeeping is incremental: each ticket or survey event recomputes that ticket's samples for
the goals it concerns (pure functions in ``metrics``), compares them with the stored ones and
moves only the difference into the per-day buckets (samples and buckets written together by
``repository.write_samples``, one statement on PostgreSQL). So a redelivered event changes nothing, a
correction (a reopen turning a first-contact resolution into a miss) replaces its sample, and a
late answer counts on the day it was answered.
"""

from __future__ import annotations

import uuid
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import cached_property
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy.ext.asyncio import AsyncSession

from services.sla import repository as sla_repository
from services.sla.calendar import Calendar
from services.sla.goals import metrics, periods, repository
from services.sla.goals.models import Goal, SurveyAnswer, TicketTimeline, Timeline
from services.sla.goals.schemas import GoalWrite
from services.sla.service import SlaContext
from shared.errors import NotFound, Unprocessable

# Periods measured when a goal is saved (its assessment), and so backfilled from history.
ASSESSED_PERIODS = {"week": 12, "month": 12, "quarter": 4, "rolling_days": 12}
MAX_BACKFILL_DAYS = 400


def invalid(field: str, message: str) -> Unprocessable:
    return Unprocessable(f"{field}: {message}", details=[{"field": field, "message": message}])


@dataclass(frozen=True)
class GoalDef:
    """What sample bookkeeping needs of a goal."""

    id: str
    metric: str
    scope: dict[str, Any]
    threshold_seconds: float | None
    calendar_id: str | None
    sla_metric: str | None
    target: float
    period_kind: str
    period_days: int | None
    timezone: str
    sample_set: str  # the key of its samples in ``ticket_samples``

    @cached_property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @cached_property
    def scope_lists(self) -> tuple[tuple[str, ...] | None, ...]:
        """The scope's channel, group and priority lists (None: any), hashable."""
        return tuple(
            tuple(found) if (found := self.scope.get(name)) else None
            for name in ("channel", "group", "priority")
        )

    @cached_property
    def measured_as(self) -> tuple[str, float | None, str | None, str | None]:
        """What a ticket's samples of this goal depend on, besides the ticket: goals alike in
        it share one computation per ticket."""
        return (self.metric, self.threshold_seconds, self.calendar_id, self.sla_metric)

    @classmethod
    def of(cls, row: Goal) -> GoalDef:
        return cls(
            row.id,
            row.metric,
            dict(row.scope or {}),
            row.threshold_seconds,
            row.calendar_id,
            row.sla_metric,
            row.target,
            row.period_kind,
            row.period_days,
            row.timezone,
            row.sample_set,
        )

    @classmethod
    def of_body(cls, body: GoalWrite, goal_id: str = "what-if") -> GoalDef:
        return cls(
            goal_id,
            body.metric,
            body.scope.model_dump(exclude_none=True),
            body.threshold_seconds,
            body.calendar_id,
            body.sla_metric,
            body.target,
            body.period.kind,
            body.period.days,
            body.timezone,
            goal_id,
        )


async def validate(session: AsyncSession, body: GoalWrite) -> None:
    """Raise a 422 naming the field for a goal that could not be measured."""
    if body.metric in metrics.TIME_METRICS and body.threshold_seconds is None:
        raise invalid("threshold_seconds", f"{body.metric} needs threshold_seconds")
    if body.metric not in metrics.TIME_METRICS and body.threshold_seconds is not None:
        raise invalid("threshold_seconds", f"{body.metric} has no threshold")
    if body.metric == "sla_compliance" and body.sla_metric is None:
        raise invalid("sla_metric", "sla_compliance needs sla_metric")
    if body.metric != "sla_compliance" and body.sla_metric is not None:
        raise invalid("sla_metric", "only sla_compliance goals take sla_metric")
    low, high = (-100.0, 100.0) if body.metric == "nps" else (0.0, 100.0)
    if not low <= body.target <= high:
        raise invalid("target", f"{body.metric} target must be between {low:g} and {high:g}")
    if body.period.kind == "rolling_days" and body.period.days is None:
        raise invalid("period.days", "rolling_days needs days")
    if body.period.kind != "rolling_days" and body.period.days is not None:
        raise invalid("period.days", f"a {body.period.kind} period has no days")
    try:
        ZoneInfo(body.timezone)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise invalid("timezone", f"unknown IANA time zone {body.timezone!r}") from exc
    if body.calendar_id is not None:
        if body.metric not in metrics.TIME_METRICS:
            raise invalid("calendar_id", f"{body.metric} is not measured in time")
        if await sla_repository.get_calendar(session, body.calendar_id) is None:
            raise invalid("calendar_id", f"unknown calendar {body.calendar_id}")


def _fields(body: GoalWrite) -> dict[str, Any]:
    return {
        "name": body.name,
        "description": body.description,
        "metric": body.metric,
        "scope": body.scope.model_dump(exclude_none=True),
        "threshold_seconds": body.threshold_seconds,
        "calendar_id": body.calendar_id,
        "sla_metric": body.sla_metric,
        "target": body.target,
        "period_kind": body.period.kind,
        "period_days": body.period.days,
        "timezone": body.timezone,
    }


def _new_sample_set() -> str:
    """A key for a goal's samples in ``ticket_samples``: 48 random bits, short because every
    ticket's row repeats it."""
    return uuid.uuid4().hex[:12]


async def create_goal(ctx: SlaContext, body: GoalWrite, *, demo: bool = False) -> Goal:
    await validate(ctx.session, body)
    now = ctx.clock.now()
    row = Goal(
        id=str(uuid.uuid4()),
        sample_set=_new_sample_set(),
        demo=demo,
        created_at=now,
        updated_at=now,
        **_fields(body),
    )
    ctx.session.add(row)
    await ctx.session.flush()
    await goals_changed(ctx)
    await backfill(ctx, GoalDef.of(row))
    return row


async def update_goal(ctx: SlaContext, goal_id: str, body: GoalWrite) -> Goal:
    row = await repository.get_goal(ctx.session, goal_id, for_update=True)
    if row is None:
        raise NotFound(f"goal {goal_id} not found")
    await validate(ctx.session, body)
    before = GoalDef.of(row)
    for name, value in _fields(body).items():
        setattr(row, name, value)
    row.updated_at = ctx.clock.now()
    await ctx.session.flush()
    await goals_changed(ctx)
    after = GoalDef.of(row)
    if (
        before.metric,
        before.scope,
        before.threshold_seconds,
        before.calendar_id,
        before.sla_metric,
        before.timezone,
    ) != (
        after.metric,
        after.scope,
        after.threshold_seconds,
        after.calendar_id,
        after.sla_metric,
        after.timezone,
    ):
        # A new key for its ticket samples: those of the old definition stay behind, ignored.
        row.sample_set = _new_sample_set()
        await repository.clear_goal_data(ctx.session, goal_id)
        await backfill(ctx, GoalDef.of(row))
    if (before.period_kind, before.period_days) != (after.period_kind, after.period_days):
        row.last_status, row.last_period_start = None, None
    return row


async def delete_goal(ctx: SlaContext, goal_id: str) -> None:
    row = await repository.get_goal(ctx.session, goal_id, for_update=True)
    if row is None:
        raise NotFound(f"goal {goal_id} not found")
    await repository.clear_goal_data(ctx.session, goal_id)
    await ctx.session.delete(row)
    await goals_changed(ctx)


def backfill_start(goal: GoalDef, now: datetime) -> datetime:
    zone = goal.zone
    current = periods.period_of(goal.period_kind, goal.period_days, periods.local_day(now, zone))
    count = ASSESSED_PERIODS[goal.period_kind]
    first = periods.previous_periods(goal.period_kind, goal.period_days, current, count)[0]
    start = first.start_at(zone)
    floor = now - timedelta(days=MAX_BACKFILL_DAYS)
    return max(start, floor)


async def measure(
    ctx: SlaContext, goal: GoalDef, start: datetime, end: datetime
) -> list[tuple[str, metrics.Sample]]:
    """Every ``(ticket id, sample)`` of ``goal`` completing in ``[start, end)``, from the
    recorded history (timelines, survey answers, stopped sla timers)."""
    found: list[tuple[str, metrics.Sample]] = []
    if goal.metric in metrics.SURVEY_METRICS:
        answers = await repository.survey_answers(ctx.session, goal.metric, start, end)
        timelines = await repository.timelines_by_id(ctx.session, [a.ticket_id for a in answers])
        for answer in answers:
            if _answer_in_scope(goal, answer, timelines.get(answer.ticket_id)):
                found.append((answer.ticket_id, _answer_sample(answer)))
        return found
    if goal.metric == "sla_compliance":
        assert goal.sla_metric is not None
        timers = await repository.stopped_timers(ctx.session, goal.sla_metric, start, end)
        timelines = await repository.timelines_by_id(ctx.session, [t.ticket_id for t in timers])
        for timer in timers:
            timeline = timelines.get(timer.ticket_id)
            if timeline is None or _timeline_in_scope(goal, timeline):
                assert timer.met_at is not None
                sample = metrics.timer_sample(
                    timer.metric,
                    timer.cycle,
                    timer.met_at,
                    timer.status == "met",
                    timer.consumed_seconds,
                )
                found.append((timer.ticket_id, sample))
        return found
    calendar = await ctx.calendar(goal.calendar_id)
    async for chunk in repository.stream_timelines(ctx.session, start - metrics.CREATED_SLACK, end):
        for row in chunk:
            if not metrics.in_scope(goal.scope, row.channel, row.group, row.priority):
                continue
            for sample in metrics.timeline_samples(
                goal.metric, goal.threshold_seconds, row.created_at, row.events, calendar
            ):
                if start <= sample.completed_at < end:
                    found.append((row.ticket_id, sample))
    return found


async def backfill(ctx: SlaContext, goal: GoalDef) -> None:
    """Measure the assessed periods from history into a new goal's samples and buckets."""
    now = ctx.clock.now()
    measured = await measure(ctx, goal, backfill_start(goal, now), now)
    zone = goal.zone
    survey = goal.metric in metrics.SURVEY_METRICS
    rows: list[dict[str, Any]] = []
    entries: dict[str, list[list[Any]]] = {}
    buckets: dict[Any, dict[str, Any]] = {}
    for ticket_id, sample in measured:
        day = periods.local_day(sample.completed_at, zone)
        if survey:
            rows.append(_sample_row(goal.id, ticket_id, sample, day)._asdict())
        else:
            entries.setdefault(ticket_id, []).append(_entry(sample, day.isoformat()))
        bucket = buckets.setdefault(
            day,
            {"goal_id": goal.id, "day": day, "samples": 0, "good": 0, "bad": 0, "value_sum": 0.0},
        )
        bucket["samples"] += 1
        bucket["good"] += sample.good
        bucket["bad"] += sample.bad
        bucket["value_sum"] += sample.value
    await repository.insert_samples(ctx.session, rows)
    patches = {ticket_id: {goal.sample_set: found} for ticket_id, found in entries.items()}
    await repository.merge_ticket_samples(ctx.session, patches)
    await repository.insert_buckets(ctx.session, list(buckets.values()))


def _entry(sample: metrics.Sample, day: str) -> list[Any]:
    """A sample as ``ticket_samples`` keeps it."""
    return [sample.key, day, sample.good, sample.bad, sample.value]


def _sample_row(
    goal_id: str, ticket_id: str, sample: metrics.Sample, day: date
) -> repository.SampleRow:
    return repository.SampleRow(
        goal_id, ticket_id, sample.key, day, sample.good, sample.bad, sample.value
    )


def _timeline_in_scope(goal: GoalDef, timeline: Timeline | TicketTimeline) -> bool:
    return metrics.in_scope(goal.scope, timeline.channel, timeline.group, timeline.priority)


def _answer_in_scope(
    goal: GoalDef, answer: SurveyAnswer, timeline: Timeline | TicketTimeline | None
) -> bool:
    # An answer for a ticket sla never saw counts only for goals without a scope.
    if timeline is None:
        return not any(goal.scope.get(k) for k in ("channel", "group", "priority"))
    return _timeline_in_scope(goal, timeline)


def _answer_sample(answer: SurveyAnswer) -> metrics.Sample:
    return metrics.survey_sample(answer.kind, answer.survey_id, answer.score, answer.answered_at)


# --- incremental bookkeeping ------------------------------------------------------------------


def samples_of(
    goal: GoalDef,
    calendar: Calendar,
    facts: metrics.TimelineFacts,
    timers: Sequence[Any],
) -> list[metrics.Sample]:
    """The samples one ticket in ``goal``'s scope gives it now (survey goals are kept by
    ``record_answer``): from its timeline's ``facts`` (times in ``calendar``, the goal's), or
    from ``timers``, the ticket's stopped sla timers, for ``sla_compliance``."""
    if goal.metric in metrics.TIMELINE_METRICS:
        return metrics.facts_samples(goal.metric, goal.threshold_seconds, facts, calendar)
    if goal.metric == "sla_compliance":
        return [
            metrics.timer_sample(t.metric, t.cycle, t.met_at, t.status == "met", t.consumed_seconds)
            for t in timers
            if t.metric == goal.sla_metric and t.met_at is not None
        ]
    return []


def apply_samples(
    goal: GoalDef,
    ticket_id: str,
    stored: Iterable[Any],
    wanted: Sequence[metrics.Sample],
    writes: repository.SampleWrites,
    *,
    only_keys: set[str] | None = None,
) -> bool:
    """Make the stored survey samples (``goal_samples`` rows) of one ticket equal ``wanted``,
    collecting the rows to write and the changes of the day totals in ``writes``; returns
    whether anything moved. ``only_keys`` limits the removal of stale samples to those keys (an
    answer touches only its own sample)."""
    zone = goal.zone
    one = (goal.id,)
    have = {s.key: s for s in stored if s.goal_id == goal.id}
    changed = False
    for sample in wanted:
        day = periods.local_day(sample.completed_at, zone)
        old = have.pop(sample.key, None)
        if old is not None:
            if (old.day, old.good, old.bad, old.value) == (
                day,
                sample.good,
                sample.bad,
                sample.value,
            ):
                continue
            writes.add_delta(one, old.day, -1, old.good, old.bad, old.value)
        writes.upserts.append(_sample_row(goal.id, ticket_id, sample, day))
        writes.add_delta(one, day, 1, sample.good, sample.bad, sample.value)
        changed = True
    for key, old in have.items():
        if only_keys is not None and key not in only_keys:
            continue
        writes.add_delta(one, old.day, -1, old.good, old.bad, old.value)
        writes.deletes.append((goal.id, ticket_id, key))
        changed = True
    return changed


def ticket_entries(
    samples: Sequence[metrics.Sample],
    zone: ZoneInfo,
    days: dict[tuple[datetime, ZoneInfo], tuple[date, str]],
) -> tuple[list[list[Any]], list[date]]:
    """Samples as ``ticket_samples`` keeps them (``[key, local day, good, bad, value]``, the
    day in ``zone``), and their local days. ``days`` keeps the local days found, for the
    ticket's other goals (most of its samples complete at its first reply or solve)."""
    entries: list[list[Any]] = []
    local_days: list[date] = []
    for sample in samples:
        found = days.get((sample.completed_at, zone))
        if found is None:
            day = periods.local_day(sample.completed_at, zone)
            found = days[(sample.completed_at, zone)] = (day, day.isoformat())
        entries.append(_entry(sample, found[1]))
        local_days.append(found[0])
    return entries, local_days


def apply_ticket_samples(
    goal_ids: tuple[str, ...],
    stored: list[list[Any]],
    wanted: list[list[Any]],
    days: list[date],
    writes: repository.SampleWrites,
) -> bool:
    """Whether one ticket's entries of some goals change from ``stored`` (as its
    ``ticket_samples`` row has them for each of them) to ``wanted`` (``ticket_entries``, with
    their local ``days``); the changes of the goals' day totals go to ``writes``."""
    if stored == wanted:
        return False
    if not stored:  # the common case: a ticket's first samples of the goals
        for entry, day in zip(wanted, days, strict=True):
            writes.add_delta(goal_ids, day, 1, entry[2], entry[3], entry[4])
        return True
    have = {entry[0]: entry for entry in stored}
    for entry, day in zip(wanted, days, strict=True):
        old = have.pop(entry[0], None)
        if old is not None:
            if old == entry:
                continue
            writes.add_delta(goal_ids, date.fromisoformat(old[1]), -1, old[2], old[3], old[4])
        writes.add_delta(goal_ids, day, 1, entry[2], entry[3], entry[4])
    for old in have.values():
        writes.add_delta(goal_ids, date.fromisoformat(old[1]), -1, old[2], old[3], old[4])
    return True


# The goal list per database, with the revision token it was read at. Every goal write changes
# the token in its transaction, and each event reads the token (``repository.ticket_state``), so
# a process never uses a list older than what its transaction sees, whichever process wrote.
_goal_cache: dict[str, tuple[str, list[GoalDef]]] = {}


# Each engine's URL as text: rendering it (which hashing a URL also does) for every event cost
# more than the lookup; and the session's, kept in its ``info`` (finding its engine costs too).
_urls: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()
_DATABASE = "goal_database"


def _database(session: AsyncSession) -> str:
    url: str | None = session.info.get(_DATABASE)
    if url is None:
        engine = session.get_bind().engine
        url = _urls.get(engine)
        if url is None:
            url = _urls[engine] = str(engine.url)
        session.info[_DATABASE] = url
    return url


def cached_goals(session: AsyncSession) -> list[GoalDef] | None:
    """The goal list this process last read from the session's database (maybe stale)."""
    found = _goal_cache.get(_database(session))
    return None if found is None else found[1]


async def goal_defs(ctx: SlaContext, token: str | None = None) -> list[GoalDef]:
    """The goals; from memory when ``token`` (the revision just read) is the cached one's."""
    key = _database(ctx.session)
    found = _goal_cache.get(key)
    if token is not None and found is not None and found[0] == token:
        return found[1]
    current, rows = await repository.goals_with_revision(ctx.session)
    goals = [GoalDef.of(row) for row in rows]
    if current is not None:
        _goal_cache[key] = (current, goals)
    return goals


async def goals_changed(ctx: SlaContext) -> None:
    """Call on every write of a goal definition: the cached lists are stale."""
    await repository.bump_revision(ctx.session)


Scope = tuple[tuple[str, ...] | None, ...]  # ``GoalDef.scope_lists``


@dataclass(frozen=True)
class _Cohort:
    """Goals of a ``_Group`` with one scope: they take a ticket's samples alike."""

    scope: Scope
    goals: list[tuple[str, str]]  # (goal id, sample set)
    ids: tuple[str, ...]  # their ids: the key of the day totals' changes they share


@dataclass(frozen=True)
class _Group:
    """Goals that measure alike (``GoalDef.measured_as``) in one time zone: their samples of a
    ticket are the same, computed once; ``cohorts``, its goals by scope."""

    first: GoalDef
    cohorts: list[_Cohort]


# ``sync_ticket``'s plan for a goal list (by identity: ``goal_defs`` gives the same list while
# the goals do not change): its non-survey goals in groups, and whether any needs sla's timers.
_plans: dict[int, tuple[Sequence[GoalDef], list[_Group], bool]] = {}


def _plan(goals: Sequence[GoalDef]) -> tuple[list[_Group], bool]:
    found = _plans.get(id(goals))
    if found is not None and found[0] is goals:
        return found[1], found[2]
    members: dict[tuple[Any, ...], dict[Scope, list[tuple[str, str]]]] = {}
    firsts: dict[tuple[Any, ...], GoalDef] = {}
    for goal in goals:
        if goal.metric not in metrics.SURVEY_METRICS:
            key = (goal.measured_as, goal.timezone)
            firsts.setdefault(key, goal)
            cohort = members.setdefault(key, {}).setdefault(goal.scope_lists, [])
            cohort.append((goal.id, goal.sample_set))
    groups = [
        _Group(
            first,
            [
                _Cohort(scope, cohort, tuple(i for i, _ in cohort))
                for scope, cohort in members[key].items()
            ],
        )
        for key, first in firsts.items()
    ]
    needs_timers = any(g.metric == "sla_compliance" for g in goals)
    if len(_plans) > 16:  # lists of goals that changed since
        _plans.clear()
    _plans[id(goals)] = (goals, groups, needs_timers)
    return groups, needs_timers


async def sync_ticket(
    ctx: SlaContext,
    timeline: Timeline,
    goals: Sequence[GoalDef],
    stored: dict[str, list[Any]],
    timers: Sequence[Any] | None,
    writes: repository.SampleWrites,
) -> bool:
    """Bring every non-survey goal's samples of this ticket (``stored``: its ``ticket_samples``,
    by sample set) up to date; ``timers`` are its stopped sla timers, read here if ``None`` and
    needed. What changed goes to ``writes`` (which the caller writes, with the timeline).

    The timeline is walked once (``metrics.timeline_facts``); goals that measure alike
    (``GoalDef.measured_as``) share the samples, and those of them with one scope share the
    day totals' changes when the ticket is new to all of them (``add_delta``)."""
    groups, needs_timers = _plan(goals)
    if not groups:
        return False
    if timers is None:
        timers = ()
        if needs_timers:
            timers = await repository.stopped_timers_of(ctx.session, timeline.ticket_id)
    facts = metrics.timeline_facts(timeline.created_at, timeline.events)
    ticket = (timeline.channel, timeline.group, timeline.priority)
    scoped: dict[Scope, bool] = {}
    measured: dict[tuple[Any, ...], list[metrics.Sample]] = {}
    days: dict[tuple[datetime, ZoneInfo], tuple[date, str]] = {}
    nothing: tuple[list[list[Any]], list[date]] = ([], [])
    patch: dict[str, list[Any]] = {}
    for group in groups:
        entries: tuple[list[list[Any]], list[date]] | None = None
        for cohort in group.cohorts:
            inside = scoped.get(cohort.scope)
            if inside is None:
                inside = scoped[cohort.scope] = all(
                    allowed is None or actual in allowed
                    for allowed, actual in zip(cohort.scope, ticket, strict=True)
                )
            wanted = nothing
            if inside:
                if entries is None:
                    first = group.first
                    samples = measured.get(first.measured_as)
                    if samples is None:
                        calendar = None
                        if first.calendar_id is not None:
                            calendar = await ctx.calendar(first.calendar_id)
                        samples = samples_of(first, calendar, facts, timers)
                        measured[first.measured_as] = samples
                    entries = ticket_entries(samples, first.zone, days)
                wanted = entries
            new: list[str] = []  # the cohort's goals that have no entries of the ticket yet
            for goal_id, sample_set in cohort.goals:
                have = stored.get(sample_set)
                if not have:
                    if wanted[0]:
                        new.append(goal_id)
                        patch[sample_set] = wanted[0]
                elif apply_ticket_samples((goal_id,), have, *wanted, writes):
                    patch[sample_set] = wanted[0]
            if new:
                ids = cohort.ids if len(new) == len(cohort.ids) else tuple(new)
                apply_ticket_samples(ids, [], *wanted, writes)
    if patch:
        writes.patches.setdefault(timeline.ticket_id, {}).update(patch)
    return bool(patch)


async def record_answer(ctx: SlaContext, answer: SurveyAnswer, goals: Sequence[GoalDef]) -> bool:
    relevant = [g for g in goals if g.metric == answer.kind]
    if not relevant:
        return False
    await repository.flush_batch(ctx.session)  # a consumer batch's pending ticket writes first
    timeline = await repository.get_timeline(ctx.session, answer.ticket_id)
    stored = await repository.samples_of_ticket(ctx.session, answer.ticket_id)
    sample = _answer_sample(answer)
    writes = repository.SampleWrites()
    changed = False
    for goal in relevant:
        wanted = [sample] if _answer_in_scope(goal, answer, timeline) else []
        changed |= apply_samples(
            goal, answer.ticket_id, stored, wanted, writes, only_keys={sample.key}
        )
    await repository.write_samples(ctx.session, writes)
    return changed
