"""Every query sla makes."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.sla.models import Timer, TrackedTicket
from shared.db import is_postgres


async def get_ticket(
    session: AsyncSession, ticket_id: str, *, for_update: bool = False
) -> TrackedTicket | None:
    statement = select(TrackedTicket).where(TrackedTicket.id == ticket_id)
    if for_update:
        statement = statement.with_for_update()
    return (await session.execute(statement)).scalar_one_or_none()


async def timers_of(session: AsyncSession, ticket_id: str) -> Sequence[Timer]:
    statement = (
        select(Timer)
        .where(Timer.ticket_id == ticket_id)
        .order_by(Timer.started_at, Timer.metric, Timer.cycle)
    )
    return (await session.execute(statement)).scalars().all()


async def open_timers(
    session: AsyncSession, ticket_id: str, metric: str | None = None
) -> Sequence[Timer]:
    statement = select(Timer).where(
        Timer.ticket_id == ticket_id, Timer.status.in_(("running", "paused"))
    )
    if metric is not None:
        statement = statement.where(Timer.metric == metric)
    return (await session.execute(statement.order_by(Timer.cycle))).scalars().all()


async def last_cycle(session: AsyncSession, ticket_id: str, metric: str) -> int | None:
    statement = select(func.max(Timer.cycle)).where(
        Timer.ticket_id == ticket_id, Timer.metric == metric
    )
    return await session.scalar(statement)


async def claim_due(session: AsyncSession, now: datetime, limit: int) -> Sequence[Timer]:
    """Timers with something to fire, locked so that other sla instances skip them."""
    statement = (
        select(Timer)
        .where(Timer.next_fire_at.is_not(None), Timer.next_fire_at <= now)
        .order_by(Timer.next_fire_at)
        .limit(limit)
    )
    if is_postgres(session):
        statement = statement.with_for_update(skip_locked=True)
    return (await session.execute(statement)).scalars().all()


async def next_fire_at(session: AsyncSession) -> datetime | None:
    return await session.scalar(select(func.min(Timer.next_fire_at)))
