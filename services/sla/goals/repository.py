"""Every query of service goals."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from types import SimpleNamespace
from typing import Any, NamedTuple
from typing import cast as type_cast

import orjson
from sqlalchemy import (
    Float,
    String,
    Table,
    Text,
    and_,
    bindparam,
    cast,
    delete,
    exists,
    func,
    literal,
    literal_column,
    select,
    text,
    true,
    tuple_,
    union_all,
    update,
)
from sqlalchemy.dialects import sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased
from sqlalchemy.sql.elements import ColumnElement

from services.sla import repository as sla_repository
from services.sla.goals.models import (
    Goal,
    GoalBucket,
    GoalRevision,
    GoalSample,
    SurveyAnswer,
    TicketSamples,
    TicketTimeline,
    Timeline,
    document_fields,
    document_text,
)
from services.sla.goals.projection import Totals
from services.sla.models import Timer, TrackedTicket
from services.sla.service import ticket_row_written
from shared.db import among, dialect_name, is_postgres, json_dumps, queue_at_end, read_once
from shared.pagination import Slice, paginate
from shared.runtime import batch_events, batch_subjects

STREAM_CHUNK = 2000
REPLAY_BATCH = 10_000
goal_samples = type_cast(Table, GoalSample.__table__)
ticket_samples = type_cast(Table, TicketSamples.__table__)
goal_buckets = type_cast(Table, GoalBucket.__table__)
ticket_timelines = type_cast(Table, TicketTimeline.__table__)
TIMELINE_COLUMNS = tuple(column.key for column in ticket_timelines.columns)  # ticket_id first


async def list_goals(session: AsyncSession) -> Sequence[Goal]:
    """Every goal, in id order."""
    return (await session.scalars(select(Goal).order_by(Goal.id))).all()


def _revision_token() -> Any:
    return select(GoalRevision.token).where(GoalRevision.id == 1).scalar_subquery()


async def goals_with_revision(session: AsyncSession) -> tuple[str | None, list[Goal]]:
    """Every goal and the revision token they are at, read in one statement (so in one
    snapshot); the token is ``None`` where the revision row is missing."""
    one = select(literal(1).label("one")).subquery()
    rows = await session.execute(
        select(_revision_token(), Goal).select_from(one).outerjoin(Goal, true()).order_by(Goal.id)
    )
    token: str | None = None
    goals: list[Goal] = []
    for row in rows:
        token = row[0]
        if row[1] is not None:
            goals.append(row[1])
    return token, goals


async def bump_revision(session: AsyncSession) -> None:
    """A goal was written: every process's cached goal list is now stale."""
    await session.execute(
        update(GoalRevision).where(GoalRevision.id == 1).values(token=uuid.uuid4().hex)
    )


@dataclass
class TicketState:
    """What goal bookkeeping needs of one ticket, read in one statement. Samples and timers
    are plain rows (``goal_id, key, day, good, bad, value``; ``metric, cycle, status, met_at,
    consumed_seconds``); the timeline is a plain ``Timeline`` (it is written with Core)."""

    timeline: Timeline | None
    samples: dict[str, list[Any]]  # its ``ticket_samples`` (not survey ones), as stored
    timers: list[Any] | None  # its stopped sla timers, when asked for
    answered: bool  # whether a survey answer for the ticket is stored
    goal_token: str | None


class SampleRow(NamedTuple):
    """One stored sample of a goal for a survey answer: a ``goal_samples`` row."""

    goal_id: str
    ticket_id: str
    key: str
    day: date
    good: int
    bad: int
    value: float


_SAMPLE_COLUMNS = SampleRow._fields
_TIMER_COLUMNS = ("metric", "cycle", "status", "met_at", "consumed_seconds")


def _state_query(with_timers: bool, locked: str | None = None) -> Any:
    """``ticket_state``'s statement, built once (its construction and cache key cost more than
    executing it): the one-row ``SELECT 1`` outer-joined to the ticket's rows.

    ``locked`` (the dialect's name) puts sla's ticket row first, locked (``FOR UPDATE`` in a
    CTE), with its row version (PostgreSQL's ``xmin``) as locked and as this statement's
    snapshot sees it: ``lock_ticket_reading_state``'s statement."""
    ticket_id = bindparam("ticket_id", type_=String)
    one = select(literal(1).label("one")).subquery()
    answered = exists().where(SurveyAnswer.ticket_id == ticket_id)
    line = ticket_timelines.c
    timeline_columns = [
        line[name] if name not in ("document", "events") else cast(line[name], Text)
        for name in TIMELINE_COLUMNS
    ]
    query = select(
        _revision_token(), answered, *timeline_columns, cast(ticket_samples.c.samples, Text)
    )
    if locked is not None:
        tickets = type_cast(Table, TrackedTicket.__table__)
        postgres = locked == "postgresql"
        version: ColumnElement[Any] = (
            literal_column("xmin::text", String) if postgres else literal("", String)
        )
        row = (
            select(tickets, version.label("row_version"))
            .where(tickets.c.id == ticket_id)
            .with_for_update()
            .cte("locked")
        )
        seen: Any = (
            select(literal_column("xmin::text", String))
            .select_from(tickets)
            .where(tickets.c.id == ticket_id)
            .scalar_subquery()
            if postgres
            else literal("", String)
        )
        # Labelled: an ORM select looks each column of its rows up by name.
        labelled = [column.label(f"c{i}") for i, column in enumerate(query.selected_columns)]
        query = select(
            aliased(TrackedTicket, row), row.c.row_version, seen.label("seen"), *labelled
        )
        query = query.select_from(one).outerjoin(row, true())
    else:
        query = query.select_from(one)
    query = query.outerjoin(ticket_timelines, line.ticket_id == ticket_id).outerjoin(
        ticket_samples, ticket_samples.c.ticket_id == ticket_id
    )
    if with_timers:
        timers = type_cast(Table, Timer.__table__)
        query = query.add_columns(*(timers.c[name] for name in _TIMER_COLUMNS)).outerjoin(
            timers,
            and_(
                timers.c.ticket_id == ticket_id,
                timers.c.met_at.is_not(None),
                timers.c.status.in_(("met", "breached")),
            ),
        )
    return query


_STATE_QUERIES = {flag: _state_query(flag) for flag in (False, True)}


async def ticket_state(session: AsyncSession, ticket_id: str, *, with_timers: bool) -> TicketState:
    """The ticket's timeline, samples, (stopped timers), whether it has survey answers, and the
    goal revision, in one round trip: the one-row ``SELECT 1`` outer-joined to each. Core rows,
    the timeline's JSON as text decoded once (the join repeats it on every row).

    Not locked: every sla handler has locked the ticket's own row (``track``) before, which
    serializes the events of one ticket."""
    query = _STATE_QUERIES[with_timers]
    # A Core select does not autoflush: the timers sla's handler just stopped must be written
    # first (nothing is sent when nothing is pending).
    await session.flush()
    rows = (await session.execute(query, {"ticket_id": ticket_id})).all()
    return _state_of(rows, 0, with_timers)


def _state_of(rows: Sequence[Any], start: int, with_timers: bool) -> TicketState:
    """The ``TicketState`` in the rows of a ``_state_query``, whose columns begin at ``start``."""
    first = rows[0]
    state = TicketState(None, {}, [] if with_timers else None, bool(first[start + 1]), first[start])
    width = len(TIMELINE_COLUMNS)
    at = start + 2
    if first[at] is not None:
        values = dict(zip(TIMELINE_COLUMNS, first[at : at + width], strict=True))
        # The document stays JSON text (written back as read unless an event replaces it).
        values["events"] = orjson.loads(values["events"])
        state.timeline = Timeline(**values)
    at += width
    if first[at] is not None:
        state.samples = orjson.loads(first[at])
    timers: dict[tuple[str, int], Any] = {}
    if state.timers is not None:
        for row in rows:
            if row[at + 1] is not None:
                timer = Row(**dict(zip(_TIMER_COLUMNS, row[at + 1 :], strict=True)))
                timers[(timer.metric, timer.cycle)] = timer
        state.timers = list(timers.values())
    return state


# ``session.info`` key of a consumer batch's goal bookkeeping (``BatchGoals``).
_BATCH = "goal_batch"


class Deferred(NamedTuple):
    """A ticket's sample bookkeeping, left for the end of its consumer batch: its kept state
    (with its timeline, as the batch's later events leave them), the timers sla's handler held
    for its event (changed in place by later ones) or, without them, the stopped ones read with
    its state (None: read them then)."""

    state: TicketState
    timers: list[Any] | None
    stopped: list[Any] | None


@dataclass
class BatchGoals:
    """Goal bookkeeping inside a consumer batch (``ServiceRuntime.handle_batch``: up to
    ``MAX_BATCH`` consecutive events, each partition's in order, in one transaction).

    Each ticket's goal state, once read, is kept here as the batch's events leave it (timeline,
    non-survey samples), so a later event of the same ticket in the transaction uses it instead
    of the database (which the batch has not written yet). The events' writes are merged (the
    last timeline and sample of each key, the day totals' changes summed) and written once, in
    one statement for all the batch's tickets on PostgreSQL, at the end of the transaction
    (``shared.db.queue_at_end``), or earlier when something is about to read them from the
    database (``flush_batch``). Every ticket written is touched in that statement, so the
    stale-snapshot check of ``lock_ticket_reading_state`` holds as before."""

    states: dict[str, TicketState] = field(default_factory=dict)
    token: str | None = None  # the goal revision last read in the transaction
    timelines: dict[str, Timeline] = field(default_factory=dict)  # by ticket id
    patches: dict[str, dict[str, list[Any]]] = field(default_factory=dict)  # by ticket id
    deltas: dict[BucketKey, list[float]] = field(default_factory=dict)
    touched: dict[str, None] = field(default_factory=dict)  # ordered set of ticket ids
    # The tickets whose samples an event of the batch may have moved, with what their
    # bookkeeping needs (``Deferred``): ``sync`` (the goal layer's, set with the first) brings
    # their samples up to date before the writes (``flush_batch``). The samples are a function
    # of the ticket's final timeline and stopped timers: computed once per ticket, not per event.
    deferred: dict[str, Deferred] = field(default_factory=dict)
    sync: Callable[[BatchGoals], Awaitable[None]] | None = None

    def writes(self) -> SampleWrites:
        """A ``SampleWrites`` whose ticket samples and day totals' changes are the batch's own:
        what the deferred bookkeeping adds to it is written with the batch (the ticket's
        ``state`` and ``touched`` are the caller's to update)."""
        return SampleWrites(patches=self.patches, deltas=self.deltas)

    def keep(self, state: TicketState, timeline: Timeline) -> None:
        """After one ticket event: its timeline written at the end when it changed, and
        ``state`` kept for the ticket's next event (its stopped timers are read anew then:
        sla's handler may stop one)."""
        if timeline.dirty:
            self.timelines[timeline.ticket_id] = timeline
            self.touched[timeline.ticket_id] = None
        state.timeline, state.timers = timeline, None
        self.states[timeline.ticket_id] = state

    def take_writes(self) -> SampleWrites:
        """Everything kept and added since the last call, as one ``SampleWrites``."""
        writes = SampleWrites(
            patches=self.patches,
            deltas=self.deltas,
            timelines=list(self.timelines.values()),
            touched=list(self.touched),
        )
        self.timelines, self.patches, self.deltas, self.touched = {}, {}, {}, {}
        return writes


def batch_goals(session: AsyncSession) -> BatchGoals | None:
    """The consumer batch's ``BatchGoals``, made on first use (its writes queued for the end of
    the transaction); None outside a batch (one message, an HTTP request, a what-if), where
    every event reads and writes its ticket's goal state itself."""
    found: BatchGoals | None = session.info.get(_BATCH)
    if found is not None or not batch_events(session):
        return found
    batch = BatchGoals()

    async def write(_: list[Any]) -> None:
        await flush_batch(session)

    if not queue_at_end(session, _BATCH, batch, write):
        return None
    session.info[_BATCH] = batch
    return batch


async def flush_batch(session: AsyncSession) -> None:
    """Write what the consumer batch has kept so far (nothing outside a batch): call before
    reading a ticket's timeline or samples from the database in the batch's transaction."""
    batch: BatchGoals | None = session.info.get(_BATCH)
    if batch is not None:
        if batch.deferred and batch.sync is not None:
            await batch.sync(batch)
        await write_samples(session, batch.take_writes())


_LOCKED_QUERIES: dict[str, Any] = {}
# ``session.info`` key: the ``(ticket id, TicketState)`` read with the ticket's lock.
_PREFETCHED = "goal_ticket_state"


async def lock_ticket_reading_state(session: AsyncSession, ticket_id: str) -> TrackedTicket | None:
    """sla's ``track`` reader while goal bookkeeping is on: sla's ticket row, locked, and the
    ticket's goal state (``ticket_state`` without timers) in the same round trip; the state is
    kept for ``take_prefetched_state``.

    The state must be read after the lock is held, so that it includes what the previous
    holder committed. One statement has one snapshot, taken before it waited for the lock: if
    the locked row is newer than the snapshot's (another transaction changed it after the
    snapshot), the state is read again, by a statement of its own. Every write of the goal
    state changes the ticket's row too (``write_samples``), so a stale snapshot is always seen.
    SQLite serializes writers (``BEGIN IMMEDIATE``): nothing to check there.

    In a consumer batch that already holds the ticket's state (``BatchGoals``: an earlier event
    of the batch locked it), only the row is locked, as sla's own reader does; the state is the
    batch's."""
    batch: BatchGoals | None = session.info.get(_BATCH)
    if batch is not None and ticket_id in batch.states:
        return await sla_repository.lock_ticket(session, ticket_id)
    dialect = dialect_name(session)
    query = _LOCKED_QUERIES.get(dialect)
    if query is None:
        query = _LOCKED_QUERIES[dialect] = _state_query(False, locked=dialect)
    rows = (await session.execute(query, {"ticket_id": ticket_id})).all()
    first = rows[0]
    ticket: TrackedTicket | None = first[0]
    if ticket is None or first[1] == first[2]:  # no row: nothing locked, nothing to check
        state = _state_of(rows, 3, False)
    else:
        state = await ticket_state(session, ticket_id, with_timers=False)
    session.info[_PREFETCHED] = (ticket_id, state)
    return ticket


# ``read_once`` key: what ``new_ticket_state`` reads once for a consumer batch.
_NEW_TICKETS = "goal_new_tickets"


def _batch_tickets_query(postgres: bool) -> Any:
    """Its statement, built once per dialect: ``(kind, value)`` rows, ``x`` a ticket id sla has
    a row for, ``t`` one with a timeline, ``a`` one with a survey answer, ``r`` the goal
    revision token."""

    def among_ids(column: Any) -> Any:
        return among(column, "ids", postgres)

    return union_all(
        select(literal("x"), TrackedTicket.id).where(among_ids(TrackedTicket.id)),
        select(literal("t"), ticket_timelines.c.ticket_id).where(
            among_ids(ticket_timelines.c.ticket_id)
        ),
        select(literal("a"), SurveyAnswer.ticket_id)
        .where(among_ids(SurveyAnswer.ticket_id))
        .distinct(),
        select(literal("r"), GoalRevision.token).where(GoalRevision.id == 1),
    )


_BATCH_TICKETS_QUERIES = {postgres: _batch_tickets_query(postgres) for postgres in (True, False)}


async def existing_reading_new_state(session: AsyncSession, ticket_ids: Sequence[str]) -> set[str]:
    """sla's once-per-batch read of which of the batch's tickets it has a row for
    (``reading_ticket_with``), reading in the same statement what ``new_ticket_state`` needs
    of the others: which have a timeline, which have survey answers, and the goal revision."""
    found: dict[str, set[str]] = {"x": set(), "t": set(), "a": set()}
    token: str | None = None
    # Core, so nothing the batch holds back (sla's rows, not these) is flushed first.
    query = _BATCH_TICKETS_QUERIES[is_postgres(session)]
    for kind, value in await session.execute(query, {"ids": list(ticket_ids)}):
        if kind == "r":
            token = value
        else:
            found[kind].add(value)
    session.info[_NEW_TICKETS] = (found["t"], found["a"], token)
    return found["x"]


async def new_ticket_state(session: AsyncSession, ticket_id: str) -> None:
    """sla's ``track`` reader for a ticket that had no sla row when its consumer batch began
    (nothing to lock): the ticket's goal state, kept for ``take_prefetched_state``, from what
    ``existing_reading_new_state`` read for the batch (a ticket with a timeline but no sla row
    is read as usual)."""

    async def load() -> tuple[set[str], set[str], str | None]:
        await existing_reading_new_state(session, list(batch_subjects(session)))
        loaded: tuple[set[str], set[str], str | None] = session.info[_NEW_TICKETS]
        return loaded

    timelines, answered, token = await read_once(session, _NEW_TICKETS, load)
    if ticket_id in timelines:
        state = await ticket_state(session, ticket_id, with_timers=False)
    else:
        state = TicketState(None, {}, None, ticket_id in answered, token)
    session.info[_PREFETCHED] = (ticket_id, state)


def take_prefetched_state(session: AsyncSession, ticket_id: str | None) -> TicketState | None:
    """The state ``lock_ticket_reading_state`` read for this ticket in this event (once)."""
    found = session.info.pop(_PREFETCHED, None)
    if found is None or found[0] != ticket_id:
        return None
    state: TicketState = found[1]
    return state


class Row(SimpleNamespace):
    """A plain row read by ``ticket_state``."""


async def page_goals(session: AsyncSession, *, limit: int, cursor: str | None) -> Slice[Goal]:
    return await paginate(session, select(Goal), keys=(Goal.id,), limit=limit, cursor=cursor)


async def get_goal(session: AsyncSession, goal_id: str, *, for_update: bool = False) -> Goal | None:
    query = select(Goal).where(Goal.id == goal_id)
    if for_update:
        query = query.with_for_update()
    return (await session.scalars(query)).one_or_none()


async def bucket_totals(
    session: AsyncSession, goal_id: str, first: date, last_exclusive: date
) -> dict[date, Totals]:
    rows = await session.execute(
        select(
            GoalBucket.day,
            GoalBucket.samples,
            GoalBucket.good,
            GoalBucket.bad,
            GoalBucket.value_sum,
        ).where(
            GoalBucket.goal_id == goal_id, GoalBucket.day >= first, GoalBucket.day < last_exclusive
        )
    )
    return {r.day: Totals(r.samples, r.good, r.bad, r.value_sum) for r in rows}


async def stored_samples(session: AsyncSession, ticket_prefix: str = "") -> list[SampleRow]:
    """Every stored sample of the current goals (of tickets whose id starts with
    ``ticket_prefix``): survey ones from ``goal_samples``, the others from ``ticket_samples``
    (those of an old sample set left out). For checks and tests: it reads whole tables."""
    pattern = f"{ticket_prefix}%"
    goal_of = dict((await session.execute(select(Goal.sample_set, Goal.id))).tuples().all())
    found = [
        SampleRow(*row)
        for row in await session.execute(
            select(*(goal_samples.c[name] for name in _SAMPLE_COLUMNS)).where(
                goal_samples.c.ticket_id.like(pattern)
            )
        )
    ]
    rows = await session.execute(
        select(ticket_samples.c.ticket_id, ticket_samples.c.samples).where(
            ticket_samples.c.ticket_id.like(pattern)
        )
    )
    for ticket_id, samples in rows:
        for sample_set, entries in samples.items():
            if sample_set in goal_of:
                goal_id = goal_of[sample_set]
                for key, day, good, bad, value in entries:
                    local = date.fromisoformat(day)
                    found.append(SampleRow(goal_id, ticket_id, key, local, good, bad, value))
    return found


async def samples_of_ticket(session: AsyncSession, ticket_id: str) -> Sequence[GoalSample]:
    # Samples are written with Core (``write_samples``): refresh those already in the session.
    query = select(GoalSample).where(GoalSample.ticket_id == ticket_id)
    return (await session.scalars(query.execution_options(populate_existing=True))).all()


# The day totals' changes are kept by ``(goal ids, local day)``: goals that measure a ticket alike
# share one entry, counted for each of them when written (``bucket_rows``).
BucketKey = tuple[tuple[str, ...], date]


@dataclass
class SampleWrites:
    """What one event changes: survey sample rows to upsert and delete, ticket samples to
    merge into ``ticket_samples`` (per ticket, ``{sample_set: entries}``, replacing those sets),
    the timeline, and the day totals' changes."""

    upserts: list[SampleRow] = field(default_factory=list)
    deletes: list[tuple[str, str, str]] = field(default_factory=list)  # goal, ticket, key
    patches: dict[str, dict[str, list[Any]]] = field(default_factory=dict)
    deltas: dict[BucketKey, list[float]] = field(default_factory=dict)
    timeline: Timeline | None = None  # the ticket's timeline to upsert
    # The ticket whose sla row a ticket event's write touches (a new row version), so that the
    # next event's locked read sees that its snapshot is stale (``lock_ticket_reading_state``).
    ticket_id: str | None = None
    # A consumer batch's merged writes (``BatchGoals``): more tickets' timelines and touches.
    timelines: list[Timeline] = field(default_factory=list)
    touched: list[str] = field(default_factory=list)

    def timeline_rows(self) -> list[Timeline]:
        return ([] if self.timeline is None else [self.timeline]) + self.timelines

    def touched_tickets(self) -> list[str]:
        return ([] if self.ticket_id is None else [self.ticket_id]) + self.touched

    def add_delta(
        self, goal_ids: tuple[str, ...], day: date, sign: int, good: int, bad: int, value: float
    ) -> None:
        """One sample in (``sign`` 1) or out (-1) of the day totals of each of ``goal_ids``."""
        delta = self.deltas.get((goal_ids, day))
        if delta is None:
            self.deltas[(goal_ids, day)] = [sign, sign * good, sign * bad, sign * value]
            return
        delta[0] += sign
        delta[1] += sign * good
        delta[2] += sign * bad
        delta[3] += sign * value

    def bucket_rows(self) -> list[dict[str, Any]]:
        """The day totals' changes, one row per goal and day."""
        totals: dict[tuple[str, date], list[float]] = {}
        for (goal_ids, day), d in self.deltas.items():
            for goal_id in goal_ids:
                total = totals.setdefault((goal_id, day), [0, 0, 0, 0.0])
                for i, value in enumerate(d):
                    total[i] += value
        return [
            {
                "goal_id": goal_id,
                "day": day,
                "samples": int(d[0]),
                "good": int(d[1]),
                "bad": int(d[2]),
                "value_sum": d[3],
            }
            for (goal_id, day), d in sorted(totals.items())
            if any(d)
        ]


# On PostgreSQL every write of one event (or of a consumer batch's tickets, ``BatchGoals``) in
# one statement of constant text: the rows travel as arrays (``unnest``), so the statement is
# compiled and prepared once, not per number of rows (compiling a multi-row ``VALUES`` cost more
# than its round trip). An empty array writes nothing.
_WRITE_POSTGRES = text(
    """
WITH touched AS (
    UPDATE sla.tickets SET version = version WHERE id = ANY(CAST(:touch AS varchar[]))
), timeline AS (
    INSERT INTO sla.ticket_timelines (ticket_id, created_at, channel, "group", priority, status,
        document, events, version, demo)
    SELECT t.ticket_id, t.created_at, t.channel, t.grp, t.priority, t.status,
        CAST(t.document AS json), CAST(t.events AS json), t.version, t.demo
    FROM unnest(CAST(:t_ticket AS varchar[]), CAST(:t_created AS timestamptz[]),
        CAST(:t_channel AS varchar[]), CAST(:t_group AS varchar[]),
        CAST(:t_priority AS varchar[]), CAST(:t_status AS varchar[]),
        CAST(:t_document AS text[]), CAST(:t_events AS text[]), CAST(:t_version AS integer[]),
        CAST(:t_demo AS boolean[]))
        AS t(ticket_id, created_at, channel, grp, priority, status, document, events, version,
            demo)
    ON CONFLICT (ticket_id) DO UPDATE SET created_at = excluded.created_at,
        channel = excluded.channel, "group" = excluded."group", priority = excluded.priority,
        status = excluded.status, document = excluded.document, events = excluded.events,
        version = excluded.version, demo = excluded.demo
), upserted AS (
    INSERT INTO sla.goal_samples (goal_id, ticket_id, key, day, good, bad, value)
    SELECT * FROM unnest(CAST(:s_goal AS varchar[]), CAST(:s_ticket AS varchar[]),
        CAST(:s_key AS varchar[]), CAST(:s_day AS date[]), CAST(:s_good AS integer[]),
        CAST(:s_bad AS integer[]), CAST(:s_value AS float8[]))
    ON CONFLICT (goal_id, ticket_id, key) DO UPDATE SET day = excluded.day,
        good = excluded.good, bad = excluded.bad, value = excluded.value
), merged AS (
    INSERT INTO sla.ticket_samples AS ts (ticket_id, samples)
    SELECT p.ticket_id, CAST(p.patch AS json)
    FROM unnest(CAST(:p_ticket AS varchar[]), CAST(:p_patch AS text[])) AS p(ticket_id, patch)
    ON CONFLICT (ticket_id) DO UPDATE
        SET samples = CAST(CAST(ts.samples AS jsonb) || CAST(excluded.samples AS jsonb) AS json)
), deleted AS (
    DELETE FROM sla.goal_samples WHERE (goal_id, ticket_id, key) IN (
        SELECT * FROM unnest(CAST(:d_goal AS varchar[]), CAST(:d_ticket AS varchar[]),
            CAST(:d_key AS varchar[])))
)
INSERT INTO sla.goal_buckets AS b (goal_id, day, samples, good, bad, value_sum)
SELECT * FROM unnest(CAST(:b_goal AS varchar[]), CAST(:b_day AS date[]),
    CAST(:b_samples AS integer[]), CAST(:b_good AS integer[]), CAST(:b_bad AS integer[]),
    CAST(:b_value AS float8[]))
ON CONFLICT (goal_id, day) DO UPDATE SET samples = b.samples + excluded.samples,
    good = b.good + excluded.good, bad = b.bad + excluded.bad,
    value_sum = b.value_sum + excluded.value_sum
"""
)


def _postgres_parameters(
    writes: SampleWrites, timelines: list[Timeline], buckets: list[dict[str, Any]], touch: list[str]
) -> dict[str, Any]:
    samples: Sequence[Sequence[Any]] = list(zip(*writes.upserts, strict=True)) or [()] * 7
    return {
        "touch": touch,
        "t_ticket": [t.ticket_id for t in timelines],
        "t_created": [t.created_at for t in timelines],
        "t_channel": [t.channel for t in timelines],
        "t_group": [t.group for t in timelines],
        "t_priority": [t.priority for t in timelines],
        "t_status": [t.status for t in timelines],
        # As every JSON column is written: a vendor's custom field may exceed 64 bits.
        "t_document": [document_text(t) for t in timelines],
        "t_events": [json_dumps(t.events) for t in timelines],
        "t_version": [t.version for t in timelines],
        "t_demo": [t.demo for t in timelines],
        "s_goal": samples[0],
        "s_ticket": samples[1],
        "s_key": samples[2],
        "s_day": samples[3],
        "s_good": samples[4],
        "s_bad": samples[5],
        "s_value": [float(value) for value in samples[6]],
        "p_ticket": list(writes.patches),
        "p_patch": [json_dumps(patch) for patch in writes.patches.values()],
        "d_goal": [d[0] for d in writes.deletes],
        "d_ticket": [d[1] for d in writes.deletes],
        "d_key": [d[2] for d in writes.deletes],
        "b_goal": [r["goal_id"] for r in buckets],
        "b_day": [r["day"] for r in buckets],
        "b_samples": [r["samples"] for r in buckets],
        "b_good": [r["good"] for r in buckets],
        "b_bad": [r["bad"] for r in buckets],
        "b_value": [float(r["value_sum"]) for r in buckets],
    }


async def write_samples(session: AsyncSession, writes: SampleWrites) -> None:
    """Upsert the timeline, upsert and delete the samples and add the changes to the day
    totals, atomically. On PostgreSQL in one statement (``_WRITE_POSTGRES``), on SQLite in one
    statement each."""
    timelines = writes.timeline_rows()
    buckets = writes.bucket_rows()
    if not (timelines or writes.upserts or writes.deletes or writes.patches or buckets):
        return
    if dialect_name(session) == "postgresql":
        # sla's own write of a ticket's row in this transaction gives it a new version anyway.
        touch = [t for t in writes.touched_tickets() if not ticket_row_written(session, t)]
        parameters = _postgres_parameters(writes, timelines, buckets, touch)
        await session.execute(_WRITE_POSTGRES, parameters)
    else:
        await _write_sqlite(session, writes, timelines, buckets)
    for timeline in timelines:
        timeline.dirty = False


async def _write_sqlite(
    session: AsyncSession,
    writes: SampleWrites,
    timelines: list[Timeline],
    buckets: list[dict[str, Any]],
) -> None:
    insert = sqlite.insert
    statements: list[Any] = []
    if timelines:
        lines = [{name: getattr(t, name) for name in TIMELINE_COLUMNS} for t in timelines]
        for line in lines:  # a JSON column's value
            document = line["document"]
            line["document"] = (
                json.loads(document) if isinstance(document, str) else document_fields(document)
            )
        timeline = insert(ticket_timelines).values(lines)
        timeline = timeline.on_conflict_do_update(
            index_elements=["ticket_id"],
            set_={name: timeline.excluded[name] for name in TIMELINE_COLUMNS[1:]},
        )
        statements.append(timeline)
    if writes.patches:
        rows = [{"ticket_id": t, "samples": patch} for t, patch in writes.patches.items()]
        merge = insert(ticket_samples).values(rows)
        merge = merge.on_conflict_do_update(
            index_elements=["ticket_id"],
            set_={"samples": func.json_patch(ticket_samples.c.samples, merge.excluded.samples)},
        )
        statements.append(merge)
    if writes.upserts:
        upsert = insert(goal_samples).values([row._asdict() for row in writes.upserts])
        upsert = upsert.on_conflict_do_update(
            index_elements=["goal_id", "ticket_id", "key"],
            set_={name: upsert.excluded[name] for name in ("day", "good", "bad", "value")},
        )
        statements.append(upsert)
    if writes.deletes:
        statements.append(
            delete(goal_samples).where(
                tuple_(goal_samples.c.goal_id, goal_samples.c.ticket_id, goal_samples.c.key).in_(
                    writes.deletes
                )
            )
        )
    if buckets:
        bump = insert(goal_buckets).values(buckets)
        bump = bump.on_conflict_do_update(
            index_elements=["goal_id", "day"],
            set_={
                name: goal_buckets.c[name] + bump.excluded[name]
                for name in ("samples", "good", "bad", "value_sum")
            },
        )
        statements.append(bump)
    for statement in statements:
        await session.execute(statement)


async def clear_goal_data(session: AsyncSession, goal_id: str) -> None:
    await session.execute(delete(GoalSample).where(GoalSample.goal_id == goal_id))
    await session.execute(delete(GoalBucket).where(GoalBucket.goal_id == goal_id))


async def merge_ticket_samples(session: AsyncSession, patches: dict[str, dict[str, Any]]) -> None:
    """Merge ``{sample_set: entries}`` into each ticket's samples (a backfill's)."""
    tickets = list(patches)
    for start in range(0, len(tickets), STREAM_CHUNK):
        chunk = {t: patches[t] for t in tickets[start : start + STREAM_CHUNK]}
        await write_samples(session, SampleWrites(patches=chunk))


async def insert_samples(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    for start in range(0, len(rows), STREAM_CHUNK):
        await session.execute(goal_samples.insert(), rows[start : start + STREAM_CHUNK])


async def insert_buckets(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    for start in range(0, len(rows), STREAM_CHUNK):
        await session.execute(goal_buckets.insert(), rows[start : start + STREAM_CHUNK])


async def get_timeline(
    session: AsyncSession, ticket_id: str, *, for_update: bool = False
) -> TicketTimeline | None:
    query = select(TicketTimeline).where(TicketTimeline.ticket_id == ticket_id)
    if for_update:
        query = query.with_for_update()
    return (await session.scalars(query)).one_or_none()


async def stream_timelines(
    session: AsyncSession, created_from: datetime, created_to: datetime
) -> AsyncIterator[Sequence[Any]]:
    """Timelines created in ``[created_from, created_to)``, in chunks of plain rows."""
    query = (
        select(
            TicketTimeline.ticket_id,
            TicketTimeline.created_at,
            TicketTimeline.channel,
            TicketTimeline.group,
            TicketTimeline.priority,
            TicketTimeline.document,
            TicketTimeline.events,
        )
        .where(TicketTimeline.created_at >= created_from, TicketTimeline.created_at < created_to)
        .execution_options(yield_per=STREAM_CHUNK)
    )
    result = await session.stream(query)
    async for chunk in result.partitions(STREAM_CHUNK):
        yield chunk


async def survey_answers(
    session: AsyncSession, kind: str, answered_from: datetime, answered_to: datetime
) -> Sequence[SurveyAnswer]:
    return (
        await session.scalars(
            select(SurveyAnswer).where(
                SurveyAnswer.kind == kind,
                SurveyAnswer.answered_at >= answered_from,
                SurveyAnswer.answered_at < answered_to,
            )
        )
    ).all()


async def get_survey_answer(session: AsyncSession, survey_id: str) -> SurveyAnswer | None:
    return await session.get(SurveyAnswer, survey_id)


async def timelines_by_id(session: AsyncSession, ids: Sequence[str]) -> dict[str, TicketTimeline]:
    found: dict[str, TicketTimeline] = {}
    for start in range(0, len(ids), STREAM_CHUNK):
        chunk = ids[start : start + STREAM_CHUNK]
        rows = await session.scalars(
            select(TicketTimeline).where(TicketTimeline.ticket_id.in_(chunk))
        )
        found.update({row.ticket_id: row for row in rows})
    return found


async def stopped_timers(
    session: AsyncSession, metric: str, met_from: datetime, met_to: datetime
) -> Sequence[Timer]:
    return (
        await session.scalars(
            select(Timer).where(
                Timer.metric == metric,
                Timer.met_at >= met_from,
                Timer.met_at < met_to,
                Timer.status.in_(("met", "breached")),
            )
        )
    ).all()


async def stopped_timers_of(session: AsyncSession, ticket_id: str) -> Sequence[Timer]:
    return (
        await session.scalars(
            select(Timer).where(
                Timer.ticket_id == ticket_id,
                Timer.met_at.is_not(None),
                Timer.status.in_(("met", "breached")),
            )
        )
    ).all()


async def answers_of_ticket(session: AsyncSession, ticket_id: str) -> Sequence[SurveyAnswer]:
    return (
        await session.scalars(select(SurveyAnswer).where(SurveyAnswer.ticket_id == ticket_id))
    ).all()


async def stream_replay_rows(
    session: AsyncSession, created_from: datetime, created_to: datetime, *, with_document: bool
) -> AsyncIterator[Sequence[Any]]:
    """For replays, the lightest rows of the timelines created in ``[created_from,
    created_to)``: ``(created epoch seconds, events JSON text)``, plus the document JSON text
    ``with_document``, in batches of up to ``REPLAY_BATCH``.

    Only those columns, as Core, so no ORM and no per-row JSON or datetime conversion; the epoch
    comes as a float (PostgreSQL's ``extract`` alone gives a ``numeric``, which asyncpg turns
    into ``Decimal``). One server-side cursor, and the next batch is asked for before this one
    is handed out, so the database reads and encodes it while the caller replays. On PostgreSQL
    the cursor is asyncpg's own, on the session's connection and inside its transaction:
    SQLAlchemy's result rows would cost more than the replay's reading itself."""
    created: ColumnElement[Any]
    postgres = dialect_name(session) == "postgresql"
    if postgres:
        created = cast(func.extract("epoch", TicketTimeline.created_at), Float)
    else:  # naive UTC text on SQLite
        created = (func.julianday(TicketTimeline.created_at) - 2440587.5) * 86400.0
    columns: list[ColumnElement[Any]] = [created, cast(TicketTimeline.events, Text)]
    if with_document:
        columns.append(cast(TicketTimeline.document, Text))
    query = select(*columns).where(
        TicketTimeline.created_at >= created_from, TicketTimeline.created_at < created_to
    )
    connection = await session.connection()
    if not postgres:
        result = await connection.stream(query, execution_options={"yield_per": REPLAY_BATCH})
        batches = result.partitions(REPLAY_BATCH)
        try:
            async for batch in _read_ahead(lambda: anext(batches, [])):
                yield batch
        finally:
            await result.close()
        return
    driver = (await connection.get_raw_connection()).driver_connection
    assert driver is not None
    compiled = query.compile(dialect=connection.dialect)
    arguments = [compiled.params[name] for name in compiled.positiontup or ()]
    async with contextlib.AsyncExitStack() as stack:
        if not driver.is_in_transaction():  # SQLAlchemy begins only at its first statement
            await stack.enter_async_context(driver.transaction(readonly=True))
        cursor = await driver.cursor(str(compiled), *arguments)
        async for batch in _read_ahead(lambda: cursor.fetch(REPLAY_BATCH)):
            yield batch


async def _read_ahead(
    fetch: Callable[[], Awaitable[Sequence[Any]]],
) -> AsyncIterator[Sequence[Any]]:
    """The batches ``fetch`` gives until an empty one, each next one already asked for while
    the caller works on the current one."""
    ahead = asyncio.ensure_future(fetch())
    try:
        while batch := await ahead:
            ahead = asyncio.ensure_future(fetch())
            await asyncio.sleep(0)  # the request for the next batch goes out now
            yield batch
    finally:
        # Never leave the connection mid-fetch (the caller stopped early or failed).
        with contextlib.suppress(Exception):
            await ahead
