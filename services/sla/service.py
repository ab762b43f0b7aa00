"""sla's business rules: which policy applies, and the life of each timer.

Policies: the first policy by ``position`` whose conditions match the ticket applies. Without a
matching policy the built-in default applies (``default_policy``), around the clock:

=========  ==============  =============  ==========
priority   first response  next response  resolution
=========  ==============  =============  ==========
urgent     15 min          30 min         4 h
high       1 h             2 h            8 h
normal     4 h             8 h            24 h
low        8 h             24 h           72 h
=========  ==============  =============  ==========

except that chat tickets get a first response within 1 minute and a next response within 2
(people wait in the chat window); warnings at 75 %; paused while ``pending`` or ``on_hold``;
no escalations. A policy with no target for a priority and metric runs no timer for it.

Timers keep business time, not wall time: ``consumed_seconds`` is the business time used before
the current running segment, which began at ``segment_started_at``; the due instant is the
calendar's ``add_business_seconds(segment_started_at, target - consumed)``. So a pause, a
priority change or a policy change only closes the segment and recomputes: elapsed and paused
time are kept. A ticket arriving after hours needs nothing special: the calendar arithmetic
starts its clock when the calendar opens.

Warnings fire at each ``warn_at`` fraction of the target, the breach at the due instant, each
once (recorded in ``fired``). Escalations fire once per level: a ``warning`` level with the
timer's first warning, a ``breach`` level with its breach.

Functions take the session and the outbox and never commit.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Self

from sqlalchemy.ext.asyncio import AsyncSession

from services.sla import repository, webhooks
from services.sla.calendar import (
    Calendar,
    add_business_seconds,
    business_seconds_between,
    parse_calendar,
)
from services.sla.models import SlaPolicy, Timer, TrackedTicket
from shared import events as ev
from shared.conditions import Conditions, matches
from shared.db import read_once
from shared.runtime import (
    HandlerContext,
    ServiceRuntime,
    UnitOfWork,
    batch_keeps_session,
    batch_subjects,
)

DEFAULT_POLICY_ID = "default"
# Minutes per priority, around the clock, used when no policy matches.
DEFAULT_TARGETS: dict[str, dict[str, int]] = {
    "urgent": {"first_response": 15, "next_response": 30, "resolution": 4 * 60},
    "high": {"first_response": 60, "next_response": 2 * 60, "resolution": 8 * 60},
    "normal": {"first_response": 4 * 60, "next_response": 8 * 60, "resolution": 24 * 60},
    "low": {"first_response": 8 * 60, "next_response": 24 * 60, "resolution": 72 * 60},
}
DEFAULT_CHAT_TARGETS = {"first_response": 1, "next_response": 2}
DEFAULT_WARN_AT = (0.75,)
PAUSE_STATUSES = ("pending", "on_hold")
DONE_STATUSES = ("solved", "closed")
OPEN_STATUSES = ("running", "paused")
METRICS = ("first_response", "next_response", "resolution")
LATE_AFTER_SECONDS = 1.0


@dataclass(frozen=True)
class Policy:
    """A policy reduced to what timers need."""

    id: str
    targets: dict[tuple[str, str], tuple[int, str | None]]  # (priority, metric) -> target
    warn_at: tuple[float, ...] = DEFAULT_WARN_AT
    # Statuses that pause each metric. First response never pauses unless a policy says so
    # (as in Zendesk: a ticket put on pending before anyone answered still waits for a reply).
    pause_statuses: dict[str, tuple[str, ...]] = field(
        default_factory=lambda: pause_map(list(PAUSE_STATUSES))
    )
    escalations: tuple[dict[str, Any], ...] = ()

    def pauses(self, metric: str, status: str) -> bool:
        return status in self.pause_statuses.get(metric, ())

    def target(self, priority: str, metric: str) -> tuple[int, str | None] | None:
        return self.targets.get((priority, metric))

    def escalations_of(self, metric: str) -> list[dict[str, Any]]:
        return [e for e in self.escalations if e["metric"] == metric]


def pause_map(value: list[str] | dict[str, list[str]] | None) -> dict[str, tuple[str, ...]]:
    """A policy's ``pause_statuses`` per metric: the list form pauses next response and
    resolution; the per-metric form gives each metric its own (absent: the default)."""
    defaults = {"first_response": (), "next_response": PAUSE_STATUSES, "resolution": PAUSE_STATUSES}
    if value is None:
        return defaults
    if isinstance(value, dict):
        given = {m: value.get(m) for m in METRICS}
        return {m: defaults[m] if v is None else tuple(v) for m, v in given.items()}
    return {"first_response": (), "next_response": tuple(value), "resolution": tuple(value)}


@functools.lru_cache(maxsize=64)
def default_policy(channel: str) -> Policy:
    """The built-in policy for a channel (one per channel, made once: every ticket no policy
    matches asks for it; callers only read it)."""
    targets: dict[tuple[str, str], tuple[int, str | None]] = {}
    for priority, per_metric in DEFAULT_TARGETS.items():
        for metric, minutes in per_metric.items():
            if channel == "chat":
                minutes = DEFAULT_CHAT_TARGETS.get(metric, minutes)
            targets[(priority, metric)] = (minutes, None)
    return Policy(id=DEFAULT_POLICY_ID, targets=targets)


def policy_of(row: SlaPolicy) -> Policy:
    return Policy(
        id=row.id,
        targets={
            (t["priority"], t["metric"]): (int(t["minutes"]), t.get("calendar_id"))
            for t in row.targets
        },
        warn_at=tuple(sorted(row.warn_at)),
        pause_statuses=pause_map(row.pause_statuses),
        escalations=tuple(row.escalations),
    )


# ``session.info`` keys: what one transaction reads once for all its events (the consumer applies
# a partition's batch in one transaction), dropped when the transaction itself changes it.
_POLICIES = "sla_policies"
_SUBSCRIPTIONS = "sla_subscriptions"
_CALENDARS = "sla_calendars"
# What one consumed event reads once of its ticket: every timer (``ticket_timers``), and the
# reader ``track`` locks the ticket's row with (``reading_ticket_with``).
_TICKET_TIMERS = "sla_ticket_timers"
_TICKET_READER = "sla_ticket_reader"
# The tickets whose timers the event stopped (``meet``), for ``stopped_a_timer``.
_STOPPED = "sla_stopped_tickets"
# In a consumer batch that keeps its session: the tickets the transaction created, with every
# timer it started for them. Nobody else can see those rows before the commit, so the objects
# are the whole truth: a later event of the batch reads neither the ticket nor its timers.
_CREATED = "sla_created_tickets"
# In such a batch: the batch's tickets sla had no row for when it began (read once), and what an
# add-on that reads with the lock (goals) does instead for such a ticket (``reading_ticket_with``).
_ABSENT = "sla_absent_tickets"
_ABSENT_READER = "sla_absent_reader"
_EXISTING_READER = "sla_existing_reader"
# The snapshot ``track`` last read, with its JSON dump (``snapshot_document``); and the ids of the
# tickets whose row the transaction wrote (inserted or updated: ``ticket_row_written``).
_DUMPED = "sla_dumped_snapshot"
_WRITTEN = "sla_written_tickets"

TicketReader = Callable[[AsyncSession, str], Awaitable[TrackedTicket | None]]
AbsentReader = Callable[[AsyncSession, str], Awaitable[None]]
ExistingReader = Callable[[AsyncSession, Sequence[str]], Awaitable[set[str]]]


@dataclass
class SlaContext(UnitOfWork):
    """sla's unit of work; its events also go to the outbound webhook subscriptions (and an
    escalation to the e-mail addresses it notifies, when ``email_notify``: SMTP is set)."""

    email_notify: bool = False

    # A consumer batch writes its tickets and timers together at its end: the ticket a handler
    # changes is locked by ``track`` (or created by this transaction), its timers read fresh.
    batch_keeps_session: ClassVar[bool] = True

    @classmethod
    def for_event(cls, ctx: HandlerContext) -> Self:
        if type(ctx.unit) is cls:  # the event's, made by its first call (every handler's)
            found: Self = ctx.unit
            return found
        context = super().for_event(ctx)
        context.email_notify = bool(ctx.runtime.settings.smtp_host)
        return context

    @classmethod
    def for_session(cls, session: AsyncSession, runtime: ServiceRuntime) -> Self:
        context = super().for_session(session, runtime)
        context.email_notify = bool(runtime.settings.smtp_host)
        return context

    async def emit(self, event: ev.Event) -> str:
        """Publish through the outbox and queue its outbound deliveries, in this transaction."""
        event_id = await super().emit(event)
        session = self.session
        await webhooks.enqueue(
            session,
            await read_once(session, _SUBSCRIPTIONS, lambda: repository.all_subscriptions(session)),
            event,
            event_id,
            self.clock.now(),
            email=self.email_notify,
        )
        return event_id

    async def calendar(self, calendar_id: str | None) -> Calendar:
        """The calendar of a timer; a deleted one counts as around the clock."""
        if calendar_id is None:
            return None
        calendars: dict[str, Calendar] = self.session.info.setdefault(_CALENDARS, {})
        if calendar_id not in calendars:
            row = await repository.get_calendar(self.session, calendar_id)
            calendars[calendar_id] = (
                None if row is None else parse_calendar(row.timezone, row.hours, row.holidays)
            )
        return calendars[calendar_id]

    def forget_calendar(self, calendar_id: str) -> None:
        """The calendar was changed in this transaction: read it again when next needed."""
        self.session.info.get(_CALENDARS, {}).pop(calendar_id, None)

    def forget_policies(self) -> None:
        """A policy was written in this transaction: read them again when next needed."""
        self.session.info.pop(_POLICIES, None)

    def forget_subscriptions(self) -> None:
        """A subscription was written in this transaction: read them again when next needed."""
        self.session.info.pop(_SUBSCRIPTIONS, None)


async def policy_for(ctx: SlaContext, ticket: TrackedTicket) -> Policy:
    """The first policy by position whose conditions match the ticket, else the default.

    The policies are read and parsed once per transaction."""

    async def load() -> list[tuple[Conditions, Policy]]:
        rows = await repository.list_policies(ctx.session)
        return [(Conditions.model_validate(row.conditions), policy_of(row)) for row in rows]

    for conditions, policy in await read_once(ctx.session, _POLICIES, load):
        if matches(conditions, ticket.document):
            return policy
    return default_policy(str(ticket.document.get("channel", "")))


# --- timer arithmetic -------------------------------------------------------------------------


def _target_seconds(timer: Timer) -> float:
    return timer.target_minutes * 60.0


def display_status(timer: Timer) -> str:
    if timer.status in ("running", "paused") and timer.breached_at is not None:
        return "breached"
    return timer.status


def remaining_seconds(timer: Timer, now: datetime, calendar: Calendar) -> float | None:
    """Business seconds left (negative once overdue); None once met."""
    if timer.status == "paused":
        return _target_seconds(timer) - timer.consumed_seconds
    if timer.status != "running" or timer.due_at is None:
        return None
    return business_seconds_between(calendar, now, timer.due_at)


def _consumed_until(timer: Timer, calendar: Calendar, at: datetime) -> float:
    if timer.status != "running" or timer.segment_started_at is None:
        return timer.consumed_seconds
    used = business_seconds_between(calendar, timer.segment_started_at, at)
    return timer.consumed_seconds + max(0.0, used)


def _instant(timer: Timer, calendar: Calendar, business_seconds: float) -> datetime:
    """When the timer will have used ``business_seconds`` in total (if it keeps running)."""
    assert timer.segment_started_at is not None
    left = max(0.0, business_seconds - timer.consumed_seconds)
    return add_business_seconds(calendar, timer.segment_started_at, left)


def warning_instants(timer: Timer, calendar: Calendar) -> list[tuple[float, datetime]]:
    return [
        (fraction, _instant(timer, calendar, fraction * _target_seconds(timer)))
        for fraction in sorted(timer.warn_at or [])
    ]


def _warning_key(fraction: float) -> str:
    return f"warning:{fraction:g}"


def schedule(timer: Timer, calendar: Calendar) -> None:
    """Recompute ``due_at`` and ``next_fire_at`` of a timer from its business-time state."""
    if timer.status != "running" or timer.segment_started_at is None:
        timer.next_fire_at = None
        return
    timer.due_at = _instant(timer, calendar, _target_seconds(timer))
    fired = set(timer.fired or [])
    pending = [
        at
        for fraction, at in warning_instants(timer, calendar)
        if _warning_key(fraction) not in fired
    ]
    if "breach" not in fired:
        pending.append(timer.due_at)
    timer.next_fire_at = min(pending) if pending else None


# --- tracking tickets -------------------------------------------------------------------------


async def track(ctx: SlaContext, snapshot: ev.TicketSnapshot) -> tuple[TrackedTicket, bool]:
    """Update sla's view of the ticket; returns it and whether the snapshot is current (not stale).

    The first call of every event handler: it locks the ticket's row (through the reader an
    add-on set for the event, ``reading_ticket_with``) and starts the event's timer cache. In a
    consumer batch that keeps its session, a ticket the batch created is taken as it holds it,
    and one that had no row when the batch began is not read at all."""
    created: dict[str, tuple[TrackedTicket, list[Timer]]] | None = None
    if batch_keeps_session(ctx.session):
        created = ctx.session.info.setdefault(_CREATED, {})
    timers: dict[str, list[Timer]] = {}
    ctx.session.info[_TICKET_TIMERS] = timers
    ctx.session.info.pop(_STOPPED, None)
    held = None if created is None else created.get(snapshot.id)
    ticket: TrackedTicket | None
    if held is not None:
        ticket, timers[snapshot.id] = held
    elif created is not None and await _absent_at_start(ctx, snapshot.id):
        # No row when the batch began, so none to lock: the common first event of a new ticket.
        # Should another transaction create it meanwhile, this one's insert fails on the key and
        # the batch is handled again one event at a time (where the row is read, locked).
        ticket = None
        absent: AbsentReader | None = ctx.session.info.get(_ABSENT_READER)
        if absent is not None:
            await absent(ctx.session, snapshot.id)
    else:
        reader: TicketReader = ctx.session.info.get(_TICKET_READER, repository.lock_ticket)
        # The reader reads this ticket's rows alone, and none of them is held back in the
        # session (a ticket this batch created is ``held``): what the batch holds back of other
        # tickets waits for its end instead of being written by this query.
        with ctx.session.no_autoflush:
            ticket = await reader(ctx.session, snapshot.id)
    document = snapshot.model_dump(mode="json")
    ctx.session.info[_DUMPED] = (snapshot, document)
    written: set[str] = ctx.session.info.setdefault(_WRITTEN, set())
    if ticket is None:
        ticket = TrackedTicket(
            id=snapshot.id,
            status=snapshot.status,
            priority=snapshot.priority,
            channel=snapshot.channel,
            group=snapshot.group,
            assignee_id=snapshot.assignee_id,
            document=document,
            policy_id=None,
            agent_replies=0,
            reopens=0,
            escalations=0,
            version=snapshot.version,
            created_at=snapshot.created_at,
            solved_at=snapshot.solved_at,
        )
        ctx.session.add(ticket)
        written.add(ticket.id)
        timers[ticket.id] = []  # timers only ever start for a ticket sla tracks
        if created is not None:
            created[ticket.id] = (ticket, timers[ticket.id])
        return ticket, True
    if snapshot.version < ticket.version:
        return ticket, False
    if snapshot.version == ticket.version:
        # Router emits several events for one change (updated, status_changed, solved...), all
        # with the same snapshot: each still gets its own, idempotent, effect.
        return ticket, True
    ticket.status = snapshot.status
    ticket.priority = snapshot.priority
    ticket.channel = snapshot.channel
    ticket.group = snapshot.group
    ticket.assignee_id = snapshot.assignee_id
    ticket.document = document
    ticket.version = snapshot.version  # a new version: the row is written
    ticket.solved_at = snapshot.solved_at
    written.add(ticket.id)
    return ticket, True


def snapshot_document(session: AsyncSession, snapshot: ev.TicketSnapshot) -> dict[str, Any] | None:
    """``snapshot.model_dump(mode="json")`` when ``track`` made it in this event, else None."""
    found = session.info.get(_DUMPED)
    return found[1] if found is not None and found[0] is snapshot else None


def ticket_row_written(session: AsyncSession, ticket_id: str) -> bool:
    """Whether this transaction inserted or changed sla's row of the ticket (so the row has a
    new version at its commit), through ``track``."""
    return ticket_id in session.info.get(_WRITTEN, ())


async def _absent_at_start(ctx: SlaContext, ticket_id: str) -> bool:
    """Whether sla had no row for the ticket when the consumer batch began (one read for all
    the batch's tickets); a ticket the batch then created is ``held`` instead."""

    async def load() -> set[str]:
        subjects = list(batch_subjects(ctx.session))
        existing: ExistingReader = ctx.session.info.get(
            _EXISTING_READER, repository.existing_ticket_ids
        )
        with ctx.session.no_autoflush:  # nothing held back concerns these tickets' rows
            return set(subjects) - await existing(ctx.session, subjects)

    return ticket_id in await read_once(ctx.session, _ABSENT, load)


def reading_ticket_with(
    session: AsyncSession,
    reader: TicketReader | None,
    absent: AbsentReader | None = None,
    existing: ExistingReader | None = None,
) -> None:
    """Have ``track`` lock the ticket's row with ``reader`` (one that also reads what an add-on
    needs of the ticket in the same round trip), and call ``absent`` instead for a ticket a
    consumer batch knows has no row, until set back to ``None``. ``existing`` tells which of a
    batch's tickets have a row (``repository.existing_ticket_ids``, read once per batch),
    reading with it what the add-on needs of the batch's new tickets."""
    if reader is None:
        session.info.pop(_TICKET_READER, None)
        session.info.pop(_ABSENT_READER, None)
        session.info.pop(_EXISTING_READER, None)
        return
    session.info[_TICKET_READER] = reader
    if absent is not None:
        session.info[_ABSENT_READER] = absent
    if existing is not None:
        session.info[_EXISTING_READER] = existing


async def ticket_timers(ctx: SlaContext, ticket_id: str) -> list[Timer]:
    """Every timer of the ticket, by start, metric and cycle. Inside an event (after ``track``)
    read once and kept for the event, with the timers it starts; elsewhere read each time."""
    cache: dict[str, list[Timer]] | None = ctx.session.info.get(_TICKET_TIMERS)
    if cache is None:
        return list(await repository.timers_of(ctx.session, ticket_id))
    if ticket_id not in cache:
        cache[ticket_id] = list(await repository.timers_of(ctx.session, ticket_id))
    return cache[ticket_id]


def stopped_a_timer(session: AsyncSession, ticket_id: str) -> bool:
    """Whether this event met (stopped) one of the ticket's timers."""
    return ticket_id in session.info.get(_STOPPED, ())


def timers_read(session: AsyncSession, ticket_id: str) -> list[Timer] | None:
    """The ticket's timers as this event holds them (None if it read none): the goal
    bookkeeping after sla's handler takes the stopped ones from here."""
    cache: dict[str, list[Timer]] | None = session.info.get(_TICKET_TIMERS)
    return None if cache is None else cache.get(ticket_id)


async def open_timers(ctx: SlaContext, ticket_id: str, metric: str | None = None) -> list[Timer]:
    """The ticket's running and paused timers (of ``metric``), by cycle."""
    timers = [
        t
        for t in await ticket_timers(ctx, ticket_id)
        if t.status in OPEN_STATUSES and (metric is None or t.metric == metric)
    ]
    timers.sort(key=lambda t: t.cycle)
    return timers


# --- timer life cycle -------------------------------------------------------------------------


async def start_timer(
    ctx: SlaContext, ticket: TrackedTicket, policy: Policy, metric: str, started_at: datetime
) -> Timer | None:
    """Start a timer unless this metric already has an open one (idempotent per ticket)."""
    target = policy.target(ticket.priority, metric)
    if target is None:
        return None
    timers = await ticket_timers(ctx, ticket.id)
    if any(t.metric == metric and t.status in OPEN_STATUSES for t in timers):
        return None
    last = max((t.cycle for t in timers if t.metric == metric), default=None)
    if metric != "next_response" and last is not None:
        return None  # first response and resolution run once per ticket
    minutes, calendar_id = target
    timer = Timer(
        id=str(uuid.uuid4()),
        ticket_id=ticket.id,
        metric=metric,
        cycle=0 if last is None else last + 1,
        status="running",
        policy_id=policy.id,
        calendar_id=calendar_id,
        target_minutes=minutes,
        priority=ticket.priority,
        started_at=started_at,
        segment_started_at=started_at,
        consumed_seconds=0.0,
        paused_seconds=0.0,
        warn_at=list(policy.warn_at),
        escalations=policy.escalations_of(metric),
        fired=[],
    )
    calendar = await ctx.calendar(calendar_id)
    schedule(timer, calendar)
    ctx.session.add(timer)
    timers.append(timer)
    timers.sort(key=lambda t: (t.started_at, t.metric, t.cycle))  # as ``timers_of`` orders
    await ctx.emit(
        ev.SlaStarted(
            ticket_id=ticket.id,
            metric=metric,
            timer_id=timer.id,
            policy_id=timer.policy_id,
            started_at=started_at,
            due_at=timer.due_at,
            target_minutes=minutes,
        )
    )
    return timer


async def checkpoint(ctx: SlaContext, timer: Timer, at: datetime) -> None:
    """Close the running segment at ``at``: its business time moves into ``consumed_seconds``."""
    if timer.status != "running" or timer.segment_started_at is None:
        return
    at = max(at, timer.segment_started_at)
    timer.consumed_seconds = _consumed_until(timer, await ctx.calendar(timer.calendar_id), at)
    timer.segment_started_at = at


async def pause(ctx: SlaContext, timer: Timer, at: datetime) -> None:
    if timer.status != "running":
        return
    calendar = await ctx.calendar(timer.calendar_id)
    at = max(at, timer.segment_started_at or at)
    timer.consumed_seconds = _consumed_until(timer, calendar, at)
    timer.status = "paused"
    timer.paused_at = at
    timer.segment_started_at = None
    timer.next_fire_at = None
    await ctx.emit(
        ev.SlaPaused(
            ticket_id=timer.ticket_id,
            metric=timer.metric,
            timer_id=timer.id,
            policy_id=timer.policy_id,
            paused_at=at,
            remaining_seconds=_target_seconds(timer) - timer.consumed_seconds,
        )
    )


async def resume(ctx: SlaContext, timer: Timer, at: datetime) -> None:
    if timer.status != "paused":
        return
    paused_at = timer.paused_at or at
    at = max(at, paused_at)
    timer.paused_seconds += (at - paused_at).total_seconds()
    timer.paused_at = None
    timer.status = "running"
    timer.segment_started_at = at
    await _run_again(ctx, timer, at)


async def _run_again(ctx: SlaContext, timer: Timer, at: datetime) -> None:
    """A timer runs again from ``at`` (resumed, or reopened): new due instant, ``sla.resumed``."""
    schedule(timer, await ctx.calendar(timer.calendar_id))
    await ctx.emit(
        ev.SlaResumed(
            ticket_id=timer.ticket_id,
            metric=timer.metric,
            timer_id=timer.id,
            policy_id=timer.policy_id,
            resumed_at=at,
            due_at=timer.due_at,
        )
    )


async def meet(ctx: SlaContext, ticket_id: str, metric: str, at: datetime) -> None:
    for timer in await open_timers(ctx, ticket_id, metric):
        calendar = await ctx.calendar(timer.calendar_id)
        timer.consumed_seconds = _consumed_until(timer, calendar, max(at, timer.started_at))
        if timer.status == "paused" and timer.paused_at is not None:
            timer.paused_seconds += max(0.0, (at - timer.paused_at).total_seconds())
        if timer.breached_at is None and timer.consumed_seconds > _target_seconds(timer):
            # Met after its target before the scheduler fired the breach (it looks about once
            # a second; after an outage, the backlog's replies come before it has caught up):
            # the breach is the metric's own, so it is recorded and announced now, as late.
            # No escalation: what it would chase has just happened.
            due = timer.due_at if timer.due_at is not None and timer.due_at <= at else at
            await _breach(ctx, timer, due, ctx.clock.now())
        breached = timer.breached_at is not None
        timer.status = "breached" if breached else "met"
        timer.met_at = at
        ctx.session.info.setdefault(_STOPPED, set()).add(ticket_id)
        timer.paused_at = None
        timer.segment_started_at = None
        timer.next_fire_at = None
        await ctx.emit(
            ev.SlaMet(
                ticket_id=ticket_id,
                metric=timer.metric,
                timer_id=timer.id,
                policy_id=timer.policy_id,
                met_at=at,
                due_at=timer.due_at,
                breached=breached,
            )
        )


async def reopen(ctx: SlaContext, ticket: TrackedTicket, at: datetime) -> None:
    """Restart resolution, keeping the business time it had used before the solve."""
    timers = await ticket_timers(ctx, ticket.id)
    resolution = [t for t in timers if t.metric == "resolution"]
    if not resolution:
        await start_timer(ctx, ticket, await policy_for(ctx, ticket), "resolution", at)
        return
    timer = resolution[-1]
    if timer.status in ("running", "paused"):
        return
    timer.status = "running"
    timer.met_at = None
    timer.segment_started_at = at
    await _run_again(ctx, timer, at)


async def apply_status(ctx: SlaContext, ticket: TrackedTicket, at: datetime) -> None:
    """Pause or resume the ticket's open timers according to its status and policy."""
    if ticket.status in DONE_STATUSES:
        return
    policy = await policy_for(ctx, ticket)
    for timer in await open_timers(ctx, ticket.id):
        if policy.pauses(timer.metric, ticket.status):
            await pause(ctx, timer, at)
        else:
            await resume(ctx, timer, at)


async def recompute(ctx: SlaContext, ticket: TrackedTicket, at: datetime) -> bool:
    """Re-match the policy and re-target open timers, keeping elapsed and paused time.

    Returns whether any timer changed. A new policy without a target for a timer's metric
    leaves that timer on its old target.
    """
    policy = await policy_for(ctx, ticket)
    ticket.policy_id = policy.id
    changed = False
    for timer in await open_timers(ctx, ticket.id):
        target = policy.target(ticket.priority, timer.metric)
        if target is None:
            continue
        minutes, calendar_id = target
        escalations = policy.escalations_of(timer.metric)
        if (
            timer.policy_id == policy.id
            and timer.target_minutes == minutes
            and timer.calendar_id == calendar_id
            and timer.priority == ticket.priority
            and list(timer.warn_at or []) == list(policy.warn_at)
            and list(timer.escalations or []) == escalations
        ):
            continue
        await checkpoint(ctx, timer, at)
        timer.policy_id = policy.id
        timer.target_minutes = minutes
        timer.calendar_id = calendar_id
        timer.priority = ticket.priority
        timer.warn_at = list(policy.warn_at)
        timer.escalations = escalations
        schedule(timer, await ctx.calendar(calendar_id))
        changed = True
    return changed


# --- firing -----------------------------------------------------------------------------------


async def _escalate(ctx: SlaContext, timer: Timer, when: str) -> None:
    for escalation in sorted(timer.escalations or [], key=lambda e: e["level"]):
        key = f"escalation:{escalation['level']}"
        if escalation["when"] != when or key in (timer.fired or []):
            continue
        timer.fired = [*(timer.fired or []), key]
        await repository.count_escalation(ctx.session, timer.ticket_id)
        await ctx.emit(
            ev.SlaEscalated(
                ticket_id=timer.ticket_id,
                metric=timer.metric,
                timer_id=timer.id,
                policy_id=timer.policy_id,
                level=escalation["level"],
                when=escalation["when"],
                actions={k: v for k, v in escalation["actions"].items() if v is not None},
            )
        )


async def fire_due(ctx: SlaContext, timer: Timer, now: datetime) -> None:
    """Fire what has come due on a claimed timer: warnings, then the breach, each once."""
    if timer.status != "running" or timer.due_at is None:
        timer.next_fire_at = None
        return
    calendar = await ctx.calendar(timer.calendar_id)
    schedule(timer, calendar)
    assert timer.due_at is not None
    for fraction, at in warning_instants(timer, calendar):
        key = _warning_key(fraction)
        if at > now or key in (timer.fired or []):
            continue
        timer.fired = [*(timer.fired or []), key]
        if "breach" not in timer.fired:
            await ctx.emit(
                ev.SlaWarning(
                    ticket_id=timer.ticket_id,
                    metric=timer.metric,
                    timer_id=timer.id,
                    policy_id=timer.policy_id,
                    fraction=fraction,
                    warn_at=at,
                    due_at=timer.due_at,
                    fired_at=now,
                    late=(now - at).total_seconds() > LATE_AFTER_SECONDS,
                )
            )
            await _escalate(ctx, timer, "warning")
    if timer.due_at <= now and "breach" not in (timer.fired or []):
        await _breach(ctx, timer, timer.due_at, now)
        await _escalate(ctx, timer, "breach")
    schedule(timer, calendar)


async def _breach(ctx: SlaContext, timer: Timer, due_at: datetime, now: datetime) -> None:
    """Record the timer's breach at ``due_at`` and announce it (``late`` when announced more
    than ``LATE_AFTER_SECONDS`` after it)."""
    timer.breached_at = due_at
    timer.fired = [*(timer.fired or []), "breach"]
    await ctx.emit(
        ev.SlaBreached(
            ticket_id=timer.ticket_id,
            metric=timer.metric,
            timer_id=timer.id,
            policy_id=timer.policy_id,
            due_at=due_at,
            fired_at=now,
            late=(now - due_at).total_seconds() > LATE_AFTER_SECONDS,
        )
    )
