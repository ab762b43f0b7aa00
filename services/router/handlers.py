"""router's event handlers: one table, read top to bottom."""

from __future__ import annotations

from services.router import service
from shared import events as ev
from shared.runtime import EventHandler, HandlerContext


def _router_context(ctx: HandlerContext) -> service.RouterContext:
    return service.RouterContext.for_event(ctx)


async def on_ticket_upsert(ctx: HandlerContext, event: ev.TicketUpsert) -> None:
    await service.apply_inbound_upsert(_router_context(ctx), event)


async def on_ticket_message(ctx: HandlerContext, event: ev.TicketMessageReceived) -> None:
    await service.apply_inbound_message(_router_context(ctx), event)


async def on_sla_escalated(ctx: HandlerContext, event: ev.SlaEscalated) -> None:
    await service.apply_escalation(_router_context(ctx), event)


EVENT_HANDLERS: dict[type[ev.Event], EventHandler] = {
    ev.TicketUpsert: on_ticket_upsert,
    ev.TicketMessageReceived: on_ticket_message,
    ev.SlaEscalated: on_sla_escalated,
}

CONSUMES = ("inbound", "sla")
