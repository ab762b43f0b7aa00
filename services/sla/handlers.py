"""sla's event handlers: one table, read top to bottom.

Every handler first updates sla's view of the ticket; a snapshot older than the one already seen
(``version``) changes nothing, so a late or redelivered event is harmless. The inbox already
drops an event id seen before.
"""

from __future__ import annotations

from services.sla import service
from services.sla.goals.timeline import with_goals
from services.sla.scheduler import wake_scheduler
from shared import events as ev
from shared.runtime import EventHandler, HandlerContext


def _sla_context(ctx: HandlerContext) -> service.SlaContext:
    return service.SlaContext.for_event(ctx)


def _wake(ctx: HandlerContext, ticket_id: str) -> None:
    """Once committed, wake the scheduler if the ticket's timers fire before it would look."""
    timers = service.timers_read(ctx.session, ticket_id)
    if timers is None:  # (every handler reads them; should one not, wake anyway)
        ctx.after_commit.append(lambda: wake_scheduler(ctx.runtime))
        return
    due = min((t.next_fire_at for t in timers if t.next_fire_at is not None), default=None)
    if due is not None:
        ctx.after_commit.append(lambda: wake_scheduler(ctx.runtime, due))


async def on_ticket_created(ctx: HandlerContext, event: ev.TicketCreated) -> None:
    sla = _sla_context(ctx)
    ticket, new = await service.track(sla, event.ticket)
    if not new:
        return
    policy = await service.policy_for(sla, ticket)
    ticket.policy_id = policy.id
    if ticket.status in service.DONE_STATUSES:
        return
    started = event.ticket.created_at
    await service.start_timer(sla, ticket, policy, "first_response", started)
    await service.start_timer(sla, ticket, policy, "resolution", started)
    await service.apply_status(sla, ticket, started)
    _wake(ctx, ticket.id)


async def on_ticket_changed(ctx: HandlerContext, event: ev.TicketEvent) -> None:
    """Status, priority, tags, group...: re-match the policy, then pause or resume."""
    sla = _sla_context(ctx)
    ticket, new = await service.track(sla, event.ticket)
    if not new or ticket.status in service.DONE_STATUSES:
        return
    at = event.ticket.updated_at
    await service.recompute(sla, ticket, at)
    await service.apply_status(sla, ticket, at)
    _wake(ctx, ticket.id)


async def on_message_added(ctx: HandlerContext, event: ev.TicketMessageAdded) -> None:
    sla = _sla_context(ctx)
    ticket, new = await service.track(sla, event.ticket)
    if not new:
        return
    message = event.message
    if message.author == "agent" and message.public:
        ticket.agent_replies += 1
        await service.meet(sla, ticket.id, "first_response", message.created_at)
        await service.meet(sla, ticket.id, "next_response", message.created_at)
    elif message.author == "customer" and ticket.status != "closed":
        # A customer's reply to a solved ticket reopens it (router emits ticket.reopened next,
        # which resumes resolution and counts the reopen): the next response starts here.
        first_open = await service.open_timers(sla, ticket.id, "first_response")
        if not first_open:
            policy = await service.policy_for(sla, ticket)
            await service.start_timer(sla, ticket, policy, "next_response", message.created_at)
    await service.apply_status(sla, ticket, event.ticket.updated_at)
    _wake(ctx, ticket.id)


async def on_ticket_solved(ctx: HandlerContext, event: ev.TicketEvent) -> None:
    sla = _sla_context(ctx)
    ticket, new = await service.track(sla, event.ticket)
    if not new:
        return
    if ticket.replies_before_solve is None and event.ticket.status == "solved":
        ticket.replies_before_solve = ticket.agent_replies
    at = event.ticket.solved_at or event.ticket.updated_at
    for metric in service.METRICS:
        await service.meet(sla, ticket.id, metric, at)


async def on_ticket_reopened(ctx: HandlerContext, event: ev.TicketReopened) -> None:
    sla = _sla_context(ctx)
    ticket, new = await service.track(sla, event.ticket)
    if not new or ticket.status in service.DONE_STATUSES:
        return
    ticket.reopens += 1
    at = event.ticket.updated_at
    await service.recompute(sla, ticket, at)
    await service.reopen(sla, ticket, at)
    await service.recompute(sla, ticket, at)
    await service.apply_status(sla, ticket, at)
    _wake(ctx, ticket.id)


EVENT_HANDLERS: dict[type[ev.Event], EventHandler] = with_goals(
    {
        ev.TicketCreated: on_ticket_created,
        ev.TicketMessageAdded: on_message_added,
        ev.TicketStatusChanged: on_ticket_changed,
        ev.TicketSolved: on_ticket_solved,
        ev.TicketClosed: on_ticket_solved,
        ev.TicketReopened: on_ticket_reopened,
        ev.TicketPrioritized: on_ticket_changed,
        ev.TicketUpdated: on_ticket_changed,
        ev.TicketAssigned: on_ticket_changed,
        ev.TicketUnassigned: on_ticket_changed,
    }
)

# surveys: survey.answered feeds csat, nps and ces goals (services/sla/goals).
CONSUMES = ("tickets", "surveys")
