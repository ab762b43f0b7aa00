"""survey's event handlers: one table, read top to bottom."""

from __future__ import annotations

from services.survey import service
from services.survey.sender import SenderState
from shared import events as ev
from shared.runtime import EventHandler, HandlerContext


def _survey_context(ctx: HandlerContext) -> service.SurveyContext:
    return service.SurveyContext.for_event(ctx)


async def on_ticket_solved(ctx: HandlerContext, event: ev.TicketSolved) -> None:
    # Policy choice, sampling and cooldown; one survey per ticket per policy.
    await service.on_solved(_survey_context(ctx), event.ticket)
    ctx.after_commit.append(ctx.runtime.state_of(SenderState).wake.set)


async def on_ticket_reopened(ctx: HandlerContext, event: ev.TicketReopened) -> None:
    # A survey not yet sent is cancelled: the customer's problem is not solved after all.
    await service.cancel_scheduled(
        _survey_context(ctx), event.ticket.id, "ticket reopened", event.ticket.version
    )


EVENT_HANDLERS: dict[type[ev.Event], EventHandler] = {
    ev.TicketSolved: on_ticket_solved,
    ev.TicketReopened: on_ticket_reopened,
}

CONSUMES = ("tickets",)
