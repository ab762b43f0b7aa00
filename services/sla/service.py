"""sla's business rules: which targets apply, and the life of each timer.

The foundation applies one built-in policy on a 24x7 clock; calendars and configurable policies
plug in at ``targets_for``. Functions take the session and the outbox and never commit.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from services.sla import repository
from services.sla.models import Timer, TrackedTicket
from shared import events as ev
from shared.clock import Clock
from shared.outbox import Outbox

DEFAULT_POLICY_ID = "default"
# Minutes per priority, around the clock, used when no policy matches.
DEFAULT_TARGETS: dict[str, dict[str, int]] = {
    "urgent": {"first_response": 15, "next_response": 30, "resolution": 4 * 60},
    "high": {"first_response": 60, "next_response": 2 * 60, "resolution": 8 * 60},
    "normal": {"first_response": 4 * 60, "next_response": 8 * 60, "resolution": 24 * 60},
    "low": {"first_response": 8 * 60, "next_response": 24 * 60, "resolution": 72 * 60},
}
PAUSE_STATUSES = ("pending", "on_hold")
DONE_STATUSES = ("solved", "closed")


@dataclass
class SlaContext:
    session: AsyncSession
    outbox: Outbox
    clock: Clock
    traceparent: str | None = None

    async def emit(self, event: ev.Event) -> None:
        await self.outbox.add(self.session, event, traceparent=self.traceparent)


def target_minutes(priority: str, metric: str) -> int:
    return DEFAULT_TARGETS[priority][metric]


def remaining_seconds(timer: Timer, now: datetime) -> float | None:
    if timer.due_at is None or (timer.status in ("met", "breached") and timer.met_at is not None):
        return None
    reference = timer.paused_at if timer.status == "paused" and timer.paused_at else now
    return (timer.due_at - reference).total_seconds()


async def track(ctx: SlaContext, snapshot: ev.TicketSnapshot) -> tuple[TrackedTicket, bool]:
    """Update sla's view of the ticket; returns it and whether this snapshot is new."""
    ticket = await repository.get_ticket(ctx.session, snapshot.id, for_update=True)
    document = snapshot.model_dump(mode="json")
    if ticket is None:
        ticket = TrackedTicket(
            id=snapshot.id,
            status=snapshot.status,
            priority=snapshot.priority,
            channel=snapshot.channel,
            group=snapshot.group,
            assignee_id=snapshot.assignee_id,
            document=document,
            policy_id=DEFAULT_POLICY_ID,
            version=snapshot.version,
            created_at=snapshot.created_at,
            solved_at=snapshot.solved_at,
        )
        ctx.session.add(ticket)
        await ctx.session.flush()
        return ticket, True
    if snapshot.version <= ticket.version:
        return ticket, False
    ticket.status = snapshot.status
    ticket.priority = snapshot.priority
    ticket.channel = snapshot.channel
    ticket.group = snapshot.group
    ticket.assignee_id = snapshot.assignee_id
    ticket.document = document
    ticket.version = snapshot.version
    ticket.solved_at = snapshot.solved_at
    return ticket, True


async def start_timer(
    ctx: SlaContext, ticket: TrackedTicket, metric: str, started_at: datetime
) -> Timer | None:
    """Start a timer unless this metric already has an open one (idempotent per ticket)."""
    if await repository.open_timers(ctx.session, ticket.id, metric):
        return None
    last = await repository.last_cycle(ctx.session, ticket.id, metric)
    if metric != "next_response" and last is not None:
        return None  # first response and resolution run once per ticket
    minutes = target_minutes(ticket.priority, metric)
    due_at = started_at + timedelta(minutes=minutes)
    timer = Timer(
        id=str(uuid.uuid4()),
        ticket_id=ticket.id,
        metric=metric,
        cycle=0 if last is None else last + 1,
        status="running",
        policy_id=ticket.policy_id,
        calendar_id=None,
        target_minutes=minutes,
        started_at=started_at,
        due_at=due_at,
        paused_seconds=0.0,
        next_fire_at=due_at,
        fired=[],
    )
    ctx.session.add(timer)
    await ctx.session.flush()
    await ctx.emit(
        ev.SlaStarted(
            ticket_id=ticket.id,
            metric=metric,
            timer_id=timer.id,
            policy_id=timer.policy_id,
            started_at=started_at,
            due_at=due_at,
            target_minutes=minutes,
        )
    )
    return timer


async def meet(ctx: SlaContext, ticket_id: str, metric: str, at: datetime) -> None:
    for timer in await repository.open_timers(ctx.session, ticket_id, metric):
        breached = timer.breached_at is not None
        timer.status = "breached" if breached else "met"
        timer.met_at = at
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


async def fire_due(ctx: SlaContext, timer: Timer, now: datetime) -> None:
    """Fire what has come due on a claimed timer: the breach, once."""
    if timer.status != "running" or timer.due_at is None or "breach" in (timer.fired or []):
        timer.next_fire_at = None
        return
    if timer.due_at > now:
        timer.next_fire_at = timer.due_at
        return
    timer.breached_at = timer.due_at
    timer.fired = [*(timer.fired or []), "breach"]
    timer.next_fire_at = None
    late = (now - timer.due_at).total_seconds() > 1.0
    await ctx.emit(
        ev.SlaBreached(
            ticket_id=timer.ticket_id,
            metric=timer.metric,
            timer_id=timer.id,
            policy_id=timer.policy_id,
            due_at=timer.due_at,
            fired_at=now,
            late=late,
        )
    )
