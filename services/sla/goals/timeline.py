"""sla's compact per-ticket timeline and the goal bookkeeping run on every consumed event.

The timeline keeps what a replay needs and nothing else: for each ticket its creation, the
public agent replies and customer messages, and status and priority changes, as
``[seconds since created, code, value]`` (see ``models.TicketTimeline``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from services.sla import service as sla_service
from services.sla.goals import repository, service, watch
from services.sla.goals.models import DOCUMENT_FIELDS, SurveyAnswer, Timeline
from services.sla.service import SlaContext
from shared import events as ev
from shared.runtime import EventHandler, HandlerContext

_INCLUDED = set(DOCUMENT_FIELDS)


def _document(ctx: SlaContext, snapshot: ev.TicketSnapshot) -> dict[str, Any]:
    """The snapshot as a dict holding at least ``DOCUMENT_FIELDS``: sla's own dump when it made
    one for this event (only the last event of a batch's ticket is cut down and written)."""
    dumped = sla_service.snapshot_document(ctx.session, snapshot)
    if dumped is None:
        return snapshot.model_dump(mode="json", include=_INCLUDED)
    return dumped


def _offset(timeline: Timeline, at: datetime) -> float:
    return round(max(0.0, (at - timeline.created_at).total_seconds()), 3)


def _append(timeline: Timeline, at: datetime, code: str, value: str | None) -> None:
    entry = [_offset(timeline, at), code, value]
    events = timeline.events
    events.append(entry)
    if len(events) > 1 and events[-2][0] > entry[0]:
        events.sort(key=lambda e: float(e[0]))  # a late event keeps the order by time
    timeline.dirty = True


def record(
    ctx: SlaContext, event: ev.TicketEvent, state: repository.TicketState
) -> tuple[Timeline, bool, bool]:
    """Update the ticket's timeline (``state.timeline``, as read) from one of router's events
    (idempotent per change; ``dirty`` set when it changed); returns it, whether it is new, and
    whether anything a sample depends on changed."""
    snapshot = event.ticket
    timeline = state.timeline
    new = timeline is None
    changed = False
    if timeline is None:
        timeline = Timeline(
            ticket_id=snapshot.id,
            created_at=snapshot.created_at,
            channel=snapshot.channel,
            group=snapshot.group,
            priority=snapshot.priority,
            status=snapshot.status,
            document=_document(ctx, snapshot),
            events=[[0.0, "s", snapshot.status], [0.0, "p", snapshot.priority]],
            version=snapshot.version,
            demo=False,
            dirty=True,
        )
        changed = snapshot.status in ("solved", "closed")
    elif snapshot.version >= timeline.version:
        at = snapshot.updated_at
        if snapshot.status != timeline.status:
            when = snapshot.solved_at if snapshot.status == "solved" and snapshot.solved_at else at
            _append(timeline, when, "s", snapshot.status)
            timeline.status = snapshot.status
            changed = True
        if snapshot.priority != timeline.priority:
            _append(timeline, at, "p", snapshot.priority)
            timeline.priority = snapshot.priority
            changed = True
        if (snapshot.channel, snapshot.group) != (timeline.channel, timeline.group):
            timeline.channel = snapshot.channel
            timeline.group = snapshot.group
            timeline.dirty = changed = True
        if snapshot.version != timeline.version:  # (the same version, the same document)
            timeline.version = snapshot.version
            timeline.dirty = True
            timeline.document = _document(ctx, snapshot)
    if type(event) is ev.TicketMessageAdded:  # (a final class; isinstance goes through ABCMeta)
        message = event.message
        if message.author == "customer":
            _append(timeline, message.created_at, "c", None)
            changed = True
        elif message.public:
            _append(timeline, message.created_at, "a", None)
            changed = True
    return timeline, new, changed


def _stopped(timers: list[Any]) -> list[Any]:
    # The status first: a running timer sla made in this event has no ``met_at`` set, and
    # reading an unset ORM attribute is slow (SQLAlchemy fires its init listeners).
    return [t for t in timers if t.status in ("met", "breached") and t.met_at is not None]


async def on_ticket_event(ctx: HandlerContext, event: ev.TicketEvent) -> None:
    """The ticket's timeline, samples, answers and the goal revision come with sla's own locked
    read of the ticket (``repository.lock_ticket_reading_state``, no round trip of their own);
    its stopped timers from the timers sla's handler holds for the event. The goal list comes
    from memory while the revision holds. One write: the timeline, the samples and the day
    totals together (``write_samples``).

    In a consumer batch (``repository.BatchGoals``) the ticket's state, once read, stays in
    the transaction for its next events; its samples are computed once, from what its last
    event that moved one left, and the writes wait for the end of the batch, merged with those
    of its other events and tickets."""
    sla = SlaContext.for_event(ctx)
    ticket_id = event.ticket.id
    timers = sla_service.timers_read(sla.session, ticket_id)
    batch = repository.batch_goals(sla.session)
    state = await _goal_state(sla, batch, ticket_id, timers)
    timeline, new, touched = record(sla, event, state)
    # A stopped sla timer is an ``sla_compliance`` sample: router's ``ticket.solved`` comes
    # after the ``ticket.updated`` that already moved the timeline, and only it stops them.
    touched = touched or sla_service.stopped_a_timer(sla.session, ticket_id)
    answers = new and state.answered
    goals = await service.goal_defs(sla, state.goal_token) if touched or answers else []
    changed = False
    if batch is not None:
        if goals and touched:
            # Computed once per ticket, before the batch writes (``BatchGoals.deferred``),
            # from what this event leaves: a later event that moves a sample replaces it.
            deferred = _sync_later(ctx, sla, batch, state, timeline, goals, timers, state.timers)
            batch.deferred[ticket_id] = deferred
        batch.keep(state, timeline)
    else:
        writes = repository.SampleWrites(timeline=timeline if timeline.dirty else None)
        writes.ticket_id = ticket_id
        if goals and touched:
            # Its stopped timers: of those sla's handler holds, or as read with its state (else
            # ``sync_ticket`` reads them).
            stopped = state.timers if timers is None else _stopped(timers)
            changed = await service.sync_ticket(
                sla, timeline, goals, state.samples, stopped, writes
            )
        await repository.write_samples(sla.session, writes)
    if goals and answers:
        # Surveys travel on another topic: an answer may have come before its ticket, when no
        # scoped goal could place it yet.
        for answer in await repository.answers_of_ticket(sla.session, timeline.ticket_id):
            changed |= await service.record_answer(sla, answer, goals)
    if changed:
        ctx.after_commit.append(lambda: watch.wake(ctx.runtime))


async def _goal_state(
    sla: SlaContext,
    batch: repository.BatchGoals | None,
    ticket_id: str,
    timers: list[Any] | None,
) -> repository.TicketState:
    """The ticket's goal state: the consumer batch's when it holds it (with the goal revision
    last read in the transaction); else what sla's locked read brought; else read now."""
    if batch is not None and (kept := batch.states.get(ticket_id)) is not None:
        kept.goal_token = batch.token
        return kept
    state = repository.take_prefetched_state(sla.session, ticket_id)
    if state is None:  # sla's handler read the ticket without it
        known = service.cached_goals(sla.session)
        with_timers = timers is None and (
            known is None or any(g.metric == "sla_compliance" for g in known)
        )
        state = await repository.ticket_state(sla.session, ticket_id, with_timers=with_timers)
    if batch is not None:
        batch.token = state.goal_token
    return state


def _sync_later(
    ctx: HandlerContext,
    sla: SlaContext,
    batch: repository.BatchGoals,
    state: repository.TicketState,
    timeline: Timeline,
    goals: list[service.GoalDef],
    timers: list[Any] | None,
    stopped: list[Any] | None,
) -> Callable[[], Awaitable[None]]:
    """The ticket's sample bookkeeping as ``on_ticket_event`` does it, run later in the batch's
    transaction (against ``state.samples`` as the batch has them then). ``timeline`` is the
    ticket's own object, which later events of the batch update in place; they change nothing a
    sample depends on unless they replace this bookkeeping with their own. Its stopped timers:
    those of ``timers`` (the ones sla's handler holds, which its later events change in place)
    stopped by then, else ``stopped``."""

    async def sync() -> None:
        writes = repository.SampleWrites(ticket_id=timeline.ticket_id)
        # (None: ``sync_ticket`` reads them now, after every event of the batch, if needed.)
        held = stopped if timers is None else _stopped(timers)
        if await service.sync_ticket(sla, timeline, goals, state.samples, held, writes):
            ctx.after_commit.append(lambda: watch.wake(ctx.runtime))
        batch.fold(writes, state)

    return sync


async def on_survey_answered(ctx: HandlerContext, event: ev.SurveyAnswered) -> None:
    sla = SlaContext.for_event(ctx)
    answer = await repository.get_survey_answer(sla.session, event.survey_id)
    if answer is None:
        answer = SurveyAnswer(
            survey_id=event.survey_id,
            ticket_id=event.ticket_id,
            kind=event.kind,
            score=event.score,
            answered_at=event.answered_at,
            demo=False,
        )
        sla.session.add(answer)
        await sla.session.flush()
    goals = await service.goal_defs(sla)
    if goals and await service.record_answer(sla, answer, goals):
        ctx.after_commit.append(lambda: watch.wake(ctx.runtime))


def with_goals(handlers: dict[type[ev.Event], EventHandler]) -> dict[type[ev.Event], EventHandler]:
    """sla's handler table with goal bookkeeping run after each ticket handler, in the same
    transaction, plus ``survey.answered``."""

    def chain(first: EventHandler) -> EventHandler:
        async def handle(ctx: HandlerContext, event: Any) -> None:
            # sla's locked read of the ticket brings the goal state along.
            repository.take_prefetched_state(ctx.session, None)  # none left from an earlier event
            sla_service.reading_ticket_with(
                ctx.session,
                repository.lock_ticket_reading_state,
                repository.new_ticket_state,
                repository.existing_reading_new_state,
            )
            try:
                await first(ctx, event)
            finally:
                sla_service.reading_ticket_with(ctx.session, None)
            await on_ticket_event(ctx, event)

        handle.__name__ = f"{getattr(first, '__name__', 'handler')}_and_goals"
        handle.__wrapped__ = first  # type: ignore[attr-defined]  # the bench compares without
        return handle

    table: dict[type[ev.Event], EventHandler] = {
        model: chain(handler) if issubclass(model, ev.TicketEvent) else handler
        for model, handler in handlers.items()
    }
    table[ev.SurveyAnswered] = on_survey_answered
    return table
