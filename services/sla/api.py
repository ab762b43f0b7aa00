"""sla's HTTP API."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from services.sla import repository, service
from services.sla.schemas import TicketSlaRead, TimerRead
from shared.app import Runtime, Session
from shared.auth import Reader
from shared.errors import NotFound

router = APIRouter(prefix="/v1")

TicketId = Annotated[str, Path(min_length=3, max_length=255)]


@router.get("/tickets/{ticket_id}/sla", response_model=TicketSlaRead, tags=["sla"])
async def ticket_sla(
    ticket_id: TicketId, session: Session, runtime: Runtime, _: Reader
) -> TicketSlaRead:
    ticket = await repository.get_ticket(session, ticket_id)
    if ticket is None:
        raise NotFound(f"ticket {ticket_id} has no SLA yet (unknown to sla)")
    now = runtime.clock.now()
    timers = await repository.timers_of(session, ticket_id)
    return TicketSlaRead(
        ticket_id=ticket_id,
        policy_id=ticket.policy_id,
        timers=[
            TimerRead(
                metric=t.metric,
                status=t.status,
                started_at=t.started_at,
                due_at=t.due_at,
                met_at=t.met_at,
                breached_at=t.breached_at,
                paused_seconds=t.paused_seconds,
                remaining_seconds=service.remaining_seconds(t, now),
            )
            for t in timers
        ],
    )
