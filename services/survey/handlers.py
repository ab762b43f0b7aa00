"""survey's event handlers: one table, read top to bottom."""

from __future__ import annotations

from services.survey import service
from shared import events as ev
from shared.runtime import EventHandler, HandlerContext


def _survey_context(ctx: HandlerContext) -> service.SurveyContext:
    return service.SurveyContext(ctx.session, ctx.outbox, ctx.clock, ctx.envelope.traceparent)


async def on_ticket_solved(ctx: HandlerContext, event: ev.TicketSolved) -> None:
    await service.schedule(_survey_context(ctx), event.ticket, service.DEFAULT_POLICY)


async def on_ticket_reopened(ctx: HandlerContext, event: ev.TicketReopened) -> None:
    await service.cancel_scheduled(_survey_context(ctx), event.ticket.id, reason="ticket reopened")


EVENT_HANDLERS: dict[type[ev.Event], EventHandler] = {
    ev.TicketSolved: on_ticket_solved,
    ev.TicketReopened: on_ticket_reopened,
}

CONSUMES = ("tickets",)
