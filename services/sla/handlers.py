"""sla's event handlers: one table, read top to bottom."""

from __future__ import annotations

from services.sla import service
from services.sla.scheduler import wake_scheduler
from shared import events as ev
from shared.runtime import EventHandler, HandlerContext


def _sla_context(ctx: HandlerContext) -> service.SlaContext:
    return service.SlaContext(ctx.session, ctx.outbox, ctx.clock, ctx.envelope.traceparent)


async def on_ticket_created(ctx: HandlerContext, event: ev.TicketCreated) -> None:
    sla = _sla_context(ctx)
    ticket, _ = await service.track(sla, event.ticket)
    if ticket.status in service.DONE_STATUSES:
        return
    started = event.ticket.created_at
    await service.start_timer(sla, ticket, "first_response", started)
    await service.start_timer(sla, ticket, "resolution", started)
    ctx.after_commit.append(lambda: wake_scheduler(ctx.runtime))


async def on_ticket_changed(ctx: HandlerContext, event: ev.TicketEvent) -> None:
    await service.track(_sla_context(ctx), event.ticket)


async def on_message_added(ctx: HandlerContext, event: ev.TicketMessageAdded) -> None:
    sla = _sla_context(ctx)
    ticket, _ = await service.track(sla, event.ticket)
    message = event.message
    if message.author == "agent" and message.public:
        await service.meet(sla, ticket.id, "first_response", message.created_at)
        await service.meet(sla, ticket.id, "next_response", message.created_at)
    elif message.author == "customer" and ticket.status not in service.DONE_STATUSES:
        first_open = await service.repository.open_timers(ctx.session, ticket.id, "first_response")
        if not first_open:
            await service.start_timer(sla, ticket, "next_response", message.created_at)
            ctx.after_commit.append(lambda: wake_scheduler(ctx.runtime))


async def on_ticket_solved(ctx: HandlerContext, event: ev.TicketSolved) -> None:
    sla = _sla_context(ctx)
    ticket, _ = await service.track(sla, event.ticket)
    at = event.ticket.solved_at or event.ticket.updated_at
    for metric in ("first_response", "next_response", "resolution"):
        await service.meet(sla, ticket.id, metric, at)


EVENT_HANDLERS: dict[type[ev.Event], EventHandler] = {
    ev.TicketCreated: on_ticket_created,
    ev.TicketMessageAdded: on_message_added,
    ev.TicketSolved: on_ticket_solved,
    ev.TicketUpdated: on_ticket_changed,
    ev.TicketAssigned: on_ticket_changed,
    ev.TicketUnassigned: on_ticket_changed,
}

CONSUMES = ("tickets",)
