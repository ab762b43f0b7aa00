"""Every query router makes."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.router.models import Agent, RoutingDecision, Ticket, TicketMessage

# Tickets that occupy an agent's capacity: pending waits on the customer, solved is done.
ACTIVE_STATUSES = ("new", "open", "on_hold")
PRIORITY_RANK = {"urgent": 3, "high": 2, "normal": 1, "low": 0}


async def get_ticket(
    session: AsyncSession, ticket_id: str, *, for_update: bool = False
) -> Ticket | None:
    statement = select(Ticket).where(Ticket.id == ticket_id)
    if for_update:
        statement = statement.with_for_update()
    return (await session.execute(statement)).scalar_one_or_none()


async def list_tickets(
    session: AsyncSession,
    *,
    status: str | None,
    priority: str | None,
    assignee_id: str | None,
    group: str | None,
    limit: int,
    after: tuple[datetime, str] | None,
) -> Sequence[Ticket]:
    statement = select(Ticket)
    if status:
        statement = statement.where(Ticket.status == status)
    if priority:
        statement = statement.where(Ticket.priority == priority)
    if assignee_id:
        statement = statement.where(Ticket.assignee_id == assignee_id)
    if group:
        statement = statement.where(Ticket.group == group)
    if after is not None:
        created_at, ticket_id = after
        statement = statement.where(
            or_(
                Ticket.created_at < created_at,
                and_(Ticket.created_at == created_at, Ticket.id < ticket_id),
            )
        )
    statement = statement.order_by(Ticket.created_at.desc(), Ticket.id.desc()).limit(limit)
    return (await session.execute(statement)).scalars().all()


async def routing_history(session: AsyncSession, ticket_id: str) -> Sequence[RoutingDecision]:
    statement = (
        select(RoutingDecision)
        .where(RoutingDecision.ticket_id == ticket_id)
        .order_by(RoutingDecision.at, RoutingDecision.id)
    )
    return (await session.execute(statement)).scalars().all()


async def get_message(session: AsyncSession, message_id: str) -> TicketMessage | None:
    return await session.get(TicketMessage, message_id)


async def get_agent(
    session: AsyncSession, agent_id: str, *, for_update: bool = False
) -> Agent | None:
    statement = select(Agent).where(Agent.id == agent_id)
    if for_update:
        statement = statement.with_for_update()
    return (await session.execute(statement)).scalar_one_or_none()


async def list_agents(
    session: AsyncSession, *, limit: int = 1000, after: str | None = None
) -> Sequence[Agent]:
    statement = select(Agent).order_by(Agent.id).limit(limit)
    if after is not None:
        statement = statement.where(Agent.id > after)
    return (await session.execute(statement)).scalars().all()


async def online_agents(session: AsyncSession) -> Sequence[Agent]:
    statement = select(Agent).where(Agent.status == "online").order_by(Agent.id)
    return (await session.execute(statement)).scalars().all()


async def agent_loads(
    session: AsyncSession, agent_ids: Sequence[str] | None = None
) -> dict[str, dict[str, int]]:
    """Active tickets per agent and channel."""
    statement = (
        select(Ticket.assignee_id, Ticket.channel, func.count())
        .where(Ticket.assignee_id.is_not(None), Ticket.status.in_(ACTIVE_STATUSES))
        .group_by(Ticket.assignee_id, Ticket.channel)
    )
    if agent_ids is not None:
        statement = statement.where(Ticket.assignee_id.in_(agent_ids))
    loads: dict[str, dict[str, int]] = defaultdict(dict)
    for agent_id, channel, count in (await session.execute(statement)).all():
        if agent_id is not None:
            loads[agent_id][channel] = count
    return loads


async def waiting_tickets(session: AsyncSession, limit: int = 200) -> Sequence[Ticket]:
    """Unassigned active tickets, most urgent then oldest first."""
    statement = (
        select(Ticket)
        .where(Ticket.assignee_id.is_(None), Ticket.status.in_(ACTIVE_STATUSES))
        .order_by(Ticket.created_at, Ticket.id)
        .limit(limit)
    )
    tickets = (await session.execute(statement)).scalars().all()
    return sorted(tickets, key=lambda t: (-PRIORITY_RANK[t.priority], t.created_at, t.id))
