"""Every query sla makes."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.sla.models import (
    CalendarRow,
    Delivery,
    SlaPolicy,
    Timer,
    TrackedTicket,
    WebhookSubscription,
)
from shared.db import existing_ids, is_postgres
from shared.pagination import Slice, paginate

# Statements run for every consumed event, built once: building a select and computing its cache
# key cost more CPU than executing it.
_TICKET = select(TrackedTicket).where(TrackedTicket.id == bindparam("ticket_id"))
_TICKET_FOR_UPDATE = _TICKET.with_for_update()
TIMER_ORDER = (Timer.started_at, Timer.metric, Timer.cycle)
# Fresh rows even for timers the session already holds (a consumer batch that keeps its session,
# ``SlaContext.batch_keeps_session``): the scheduler may have fired one since. The session's own
# changes are written first, by the query's autoflush.
_TIMERS_OF = (
    select(Timer)
    .where(Timer.ticket_id == bindparam("ticket_id"))
    .order_by(*TIMER_ORDER)
    .execution_options(populate_existing=True)
)


async def get_ticket(
    session: AsyncSession, ticket_id: str, *, for_update: bool = False
) -> TrackedTicket | None:
    statement = _TICKET_FOR_UPDATE if for_update else _TICKET
    return (await session.execute(statement, {"ticket_id": ticket_id})).scalar_one_or_none()


async def lock_ticket(session: AsyncSession, ticket_id: str) -> TrackedTicket | None:
    """The ticket's row, locked for the rest of the transaction (None if sla has none)."""
    return await get_ticket(session, ticket_id, for_update=True)


async def existing_ticket_ids(session: AsyncSession, ticket_ids: Iterable[str]) -> set[str]:
    """Which of ``ticket_ids`` sla has a row for."""
    return await existing_ids(session, TrackedTicket.id, ticket_ids)


async def timers_of(session: AsyncSession, ticket_id: str) -> Sequence[Timer]:
    """Every timer of the ticket, by start, metric and cycle."""
    return (await session.execute(_TIMERS_OF, {"ticket_id": ticket_id})).scalars().all()


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


# --- calendars and policies ---------------------------------------------------------------------


async def get_calendar(session: AsyncSession, calendar_id: str) -> CalendarRow | None:
    return await session.get(CalendarRow, calendar_id)


async def page_calendars(
    session: AsyncSession, *, limit: int, cursor: str | None
) -> Slice[CalendarRow]:
    statement = select(CalendarRow)
    return await paginate(session, statement, keys=(CalendarRow.id,), limit=limit, cursor=cursor)


async def get_policy(session: AsyncSession, policy_id: str) -> SlaPolicy | None:
    return await session.get(SlaPolicy, policy_id)


POLICY_ORDER = (SlaPolicy.position, SlaPolicy.id)


async def list_policies(session: AsyncSession) -> Sequence[SlaPolicy]:
    """All policies in the order they are tried."""
    return (await session.execute(select(SlaPolicy).order_by(*POLICY_ORDER))).scalars().all()


async def page_policies(
    session: AsyncSession, *, limit: int, cursor: str | None
) -> Slice[SlaPolicy]:
    return await paginate(session, select(SlaPolicy), keys=POLICY_ORDER, limit=limit, cursor=cursor)


async def policies_using_calendar(session: AsyncSession, calendar_id: str) -> list[str]:
    return [
        policy.id
        for policy in await list_policies(session)
        if any(target.get("calendar_id") == calendar_id for target in policy.targets)
    ]


async def open_timers_on_calendar(session: AsyncSession, calendar_id: str) -> Sequence[Timer]:
    statement = select(Timer).where(
        Timer.calendar_id == calendar_id, Timer.status.in_(("running", "paused"))
    )
    return (await session.execute(statement)).scalars().all()


async def open_ticket_ids(session: AsyncSession) -> Sequence[str]:
    statement = select(Timer.ticket_id).where(Timer.status.in_(("running", "paused"))).distinct()
    return (await session.execute(statement)).scalars().all()


# --- ops ------------------------------------------------------------------------------------------


async def page_breaches(
    session: AsyncSession,
    *,
    since: datetime | None,
    until: datetime | None,
    metric: str | None,
    priority: str | None,
    limit: int,
    cursor: str | None,
) -> Slice[Timer]:
    """Breached timers, oldest breach first."""
    statement = select(Timer).where(Timer.breached_at.is_not(None))
    if since is not None:
        statement = statement.where(Timer.breached_at >= since)
    if until is not None:
        statement = statement.where(Timer.breached_at < until)
    if metric is not None:
        statement = statement.where(Timer.metric == metric)
    if priority is not None:
        statement = statement.where(Timer.priority == priority)
    keys = (Timer.breached_at, Timer.id)
    return await paginate(session, statement, keys=keys, limit=limit, cursor=cursor)


async def page_due_before(
    session: AsyncSession, until: datetime, *, limit: int, cursor: str | None
) -> Slice[Timer]:
    """Running, not yet breached timers due before ``until``, soonest first."""
    statement = select(Timer).where(
        Timer.status == "running",
        Timer.breached_at.is_(None),
        Timer.due_at.is_not(None),
        Timer.due_at <= until,
    )
    keys = (Timer.due_at, Timer.id)
    return await paginate(session, statement, keys=keys, limit=limit, cursor=cursor)


async def count_escalation(session: AsyncSession, ticket_id: str) -> None:
    await session.execute(
        update(TrackedTicket)
        .where(TrackedTicket.id == ticket_id)
        .values(escalations=TrackedTicket.escalations + 1)
    )


async def tickets_created(
    session: AsyncSession, since: datetime | None, until: datetime | None
) -> Sequence[TrackedTicket]:
    statement = select(TrackedTicket)
    if since is not None:
        statement = statement.where(TrackedTicket.created_at >= since)
    if until is not None:
        statement = statement.where(TrackedTicket.created_at < until)
    return (await session.execute(statement)).scalars().all()


async def timers_of_tickets(session: AsyncSession, ticket_ids: Sequence[str]) -> list[Timer]:
    timers: list[Timer] = []
    for start in range(0, len(ticket_ids), 1000):
        chunk = ticket_ids[start : start + 1000]
        statement = select(Timer).where(Timer.ticket_id.in_(chunk))
        timers.extend((await session.execute(statement)).scalars().all())
    return timers


async def get_subscription(
    session: AsyncSession, subscription_id: str
) -> WebhookSubscription | None:
    return await session.get(WebhookSubscription, subscription_id)


async def page_subscriptions(
    session: AsyncSession, *, limit: int, cursor: str | None
) -> Slice[WebhookSubscription]:
    keys = (WebhookSubscription.id,)
    statement = select(WebhookSubscription)
    return await paginate(session, statement, keys=keys, limit=limit, cursor=cursor)


async def page_deliveries(
    session: AsyncSession, subscription_id: str, *, limit: int, cursor: str | None
) -> Slice[Delivery]:
    """A subscription's delivery log, newest first."""
    statement = select(Delivery).where(Delivery.subscription_id == subscription_id)
    keys = (Delivery.created_at, Delivery.id)
    return await paginate(
        session, statement, keys=keys, limit=limit, cursor=cursor, descending=True
    )


async def all_subscriptions(session: AsyncSession) -> Sequence[WebhookSubscription]:
    return (await session.execute(select(WebhookSubscription))).scalars().all()
