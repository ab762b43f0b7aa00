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
# ``session.info`` key: sla's reads of tickets in this transaction bring their goal state.
_READS_STATE = "goal_reads_state"


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
    the transaction for its next events, and an event only brings its timeline up to date:
    the samples of the tickets whose events may have moved one are computed once per ticket,
    when the batch writes (``_batch_sync``), merged with those of its other tickets."""
    sla = SlaContext.for_event(ctx)
    session = sla.session
    ticket_id = event.ticket.id
    timers = sla_service.timers_read(session, ticket_id)
    batch = repository.batch_goals(session)
    state = await _goal_state(sla, batch, ticket_id, timers)
    timeline, new, touched = record(sla, event, state)
    # A stopped sla timer is an ``sla_compliance`` sample: router's ``ticket.solved`` comes
    # after the ``ticket.updated`` that already moved the timeline, and only it stops them.
    touched = touched or sla_service.stopped_a_timer(session, ticket_id)
    changed = False
    if batch is not None:
        if touched:
            batch.deferred[ticket_id] = repository.Deferred(state, timers, state.timers)
            if batch.sync is None:
                batch.sync = _batch_sync(ctx, sla)
        batch.keep(state, timeline)
    else:
        writes = repository.SampleWrites(timeline=timeline if timeline.dirty else None)
        writes.ticket_id = ticket_id
        goals = await service.goal_defs(sla, state.goal_token) if touched else []
        if goals:
            # Its stopped timers: of those sla's handler holds, or as read with its state (else
            # ``sync_ticket`` reads them).
            stopped = state.timers if timers is None else _stopped(timers)
            changed = await service.sync_ticket(
                sla, timeline, goals, state.samples, stopped, writes
            )
        await repository.write_samples(session, writes)
    if new and state.answered:
        # Surveys travel on another topic: an answer may have come before its ticket, when no
        # scoped goal could place it yet.
        goals = await service.goal_defs(sla, state.goal_token)
        answers = await repository.answers_of_ticket(session, ticket_id) if goals else ()
        for answer in answers:
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


def _batch_sync(
    ctx: HandlerContext, sla: SlaContext
) -> Callable[[repository.BatchGoals], Awaitable[None]]:
    """The consumer batch's ``BatchGoals.sync``: the sample bookkeeping of its tickets, as
    ``on_ticket_event`` does it for one event, against the batch's kept state of each; what
    changes goes straight into the batch's writes."""

    async def sync(batch: repository.BatchGoals) -> None:
        deferred, batch.deferred = batch.deferred, {}
        goals = await service.goal_defs(sla, batch.token)
        if not goals:
            return
        writes = batch.writes()
        changed = False
        for ticket_id, (state, timers, stopped) in deferred.items():
            assert state.timeline is not None  # (kept by its event, ``BatchGoals.keep``)
            # The timers sla's handler held, stopped by now; or those read with its state
            # (None: ``sync_ticket`` reads them now, after every event of the batch, if needed).
            held = stopped if timers is None else _stopped(timers)
            if await service.sync_ticket(sla, state.timeline, goals, state.samples, held, writes):
                state.samples.update(writes.patches[ticket_id])
                batch.touched[ticket_id] = None
                changed = True
        if changed:
            ctx.after_commit.append(lambda: watch.wake(ctx.runtime))

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
            session = ctx.session
            if _READS_STATE in session.info:
                repository.take_prefetched_state(session, None)  # none left from an earlier event
            else:
                # sla's locked read of the ticket brings the goal state along, for the rest of
                # the transaction (a consumer batch's: every ticket handler of it is chained).
                sla_service.reading_ticket_with(
                    session,
                    repository.lock_ticket_reading_state,
                    repository.new_ticket_state,
                    repository.existing_reading_new_state,
                )
                session.info[_READS_STATE] = True
            await first(ctx, event)
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
