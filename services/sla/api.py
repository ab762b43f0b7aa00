"""sla's HTTP API: calendars, SLA policies, per-ticket timers, breaches and at-risk timers."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response
from sqlalchemy.ext.asyncio import AsyncSession

from services.sla import reports, repository, service, webhooks
from services.sla.calendar import CalendarError, parse_calendar
from services.sla.models import CalendarRow, SlaPolicy, WebhookSubscription
from services.sla.scheduler import wake_scheduler
from services.sla.schemas import (
    AtRiskRead,
    BreachRead,
    CalendarRead,
    CalendarWrite,
    SlaPolicyRead,
    SlaPolicyWrite,
    TicketSlaRead,
    TimerRead,
    WebhookDeliveryRead,
    WebhookSubscriptionCreate,
    WebhookSubscriptionRead,
)
from shared.app import Runtime, Session
from shared.auth import Admin, Reader
from shared.conditions import unknown_fields
from shared.errors import Conflict, NotFound, Unprocessable
from shared.events import Metric, Priority
from shared.pagination import Cursor, Limit, Page, decode_cursor, encode_cursor
from shared.runtime import ServiceRuntime
from shared.types import QueryTime

router = APIRouter(prefix="/v1")

TicketId = Annotated[str, Path(min_length=3, max_length=255)]
ItemId = Annotated[str, Path(min_length=1, max_length=64)]


def _invalid(field: str, message: str) -> Unprocessable:
    return Unprocessable(f"{field}: {message}", details=[{"field": field, "message": message}])


# --- per ticket ---------------------------------------------------------------------------------


@router.get("/tickets/{ticket_id}/sla", response_model=TicketSlaRead, tags=["sla"])
async def ticket_sla(
    ticket_id: TicketId, session: Session, runtime: Runtime, _: Reader
) -> TicketSlaRead:
    ticket = await repository.get_ticket(session, ticket_id)
    if ticket is None:
        raise NotFound(f"ticket {ticket_id} has no SLA yet (unknown to sla)")
    now = runtime.clock.now()
    ctx = service.SlaContext.for_session(session, runtime)
    timers = await repository.timers_of(session, ticket_id)
    return TicketSlaRead(
        ticket_id=ticket_id,
        policy_id=ticket.policy_id,
        timers=[
            TimerRead(
                metric=t.metric,
                status=service.display_status(t),
                started_at=t.started_at,
                due_at=t.due_at,
                met_at=t.met_at,
                breached_at=t.breached_at,
                paused_seconds=t.paused_seconds,
                remaining_seconds=service.remaining_seconds(
                    t, now, await ctx.calendar(t.calendar_id)
                ),
            )
            for t in timers
        ],
    )


# --- calendars ----------------------------------------------------------------------------------


def _calendar_read(row: CalendarRow) -> CalendarRead:
    return CalendarRead(
        id=row.id,
        name=row.name,
        timezone=row.timezone,
        hours=row.hours,
        holidays=row.holidays,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _check_calendar(body: CalendarWrite) -> dict[str, Any]:
    try:
        parse_calendar(body.timezone, body.hours, body.holidays)
    except CalendarError as exc:
        raise _invalid(exc.field, exc.message) from exc
    return {"name": body.name, "timezone": body.timezone, "hours": body.hours}


@router.get("/calendars", response_model=Page[CalendarRead], tags=["calendars"])
async def list_calendars(
    session: Session, _: Reader, limit: Limit = 100, cursor: Cursor = None
) -> Page[CalendarRead]:
    after = str(decode_cursor(cursor, 1)[0]) if cursor else None
    rows = await repository.list_calendars(session, limit=limit + 1, after=after)
    next_cursor = encode_cursor(rows[limit - 1].id) if len(rows) > limit else None
    return Page(items=[_calendar_read(r) for r in rows[:limit]], next_cursor=next_cursor)


@router.post("/calendars", response_model=CalendarRead, status_code=201, tags=["calendars"])
async def create_calendar(
    body: CalendarWrite, session: Session, runtime: Runtime, _: Admin
) -> CalendarRead:
    fields = _check_calendar(body)
    now = runtime.clock.now()
    row = CalendarRow(
        id=str(uuid.uuid4()),
        holidays=sorted(set(body.holidays)),
        created_at=now,
        updated_at=now,
        **fields,
    )
    session.add(row)
    await session.flush()
    return _calendar_read(row)


async def _calendar_or_404(session: AsyncSession, calendar_id: str) -> CalendarRow:
    row = await repository.get_calendar(session, calendar_id)
    if row is None:
        raise NotFound(f"calendar {calendar_id} not found")
    return row


@router.get("/calendars/{calendar_id}", response_model=CalendarRead, tags=["calendars"])
async def get_calendar(calendar_id: ItemId, session: Session, _: Reader) -> CalendarRead:
    return _calendar_read(await _calendar_or_404(session, calendar_id))


@router.put("/calendars/{calendar_id}", response_model=CalendarRead, tags=["calendars"])
async def replace_calendar(
    calendar_id: ItemId, body: CalendarWrite, session: Session, runtime: Runtime, _: Admin
) -> CalendarRead:
    row = await _calendar_or_404(session, calendar_id)
    fields = _check_calendar(body)
    now = runtime.clock.now()
    # Timers on this calendar keep the business time used so far (on the old hours) and get
    # new due instants on the new hours.
    timers = await repository.open_timers_on_calendar(session, calendar_id)
    before = service.SlaContext.for_session(session, runtime)
    for timer in timers:
        await service.checkpoint(before, timer, now)
    for name, value in fields.items():
        setattr(row, name, value)
    row.holidays = sorted(set(body.holidays))
    row.updated_at = now
    await session.flush()
    after = service.SlaContext.for_session(session, runtime)
    for timer in timers:
        service.schedule(timer, await after.calendar(calendar_id))
    wake_scheduler(runtime)
    return _calendar_read(row)


@router.delete("/calendars/{calendar_id}", status_code=204, tags=["calendars"])
async def delete_calendar(calendar_id: ItemId, session: Session, _: Admin) -> Response:
    row = await _calendar_or_404(session, calendar_id)
    users = await repository.policies_using_calendar(session, calendar_id)
    if users:
        raise Conflict(
            f"calendar {calendar_id} is used by SLA policies {users}",
            details=[{"field": "calendar_id", "policies": users}],
        )
    await session.delete(row)
    return Response(status_code=204)


# --- SLA policies -------------------------------------------------------------------------------


def _policy_read(row: SlaPolicy) -> SlaPolicyRead:
    return SlaPolicyRead.model_validate(
        {
            "id": row.id,
            "name": row.name,
            "position": row.position,
            "conditions": row.conditions,
            "targets": row.targets,
            "warn_at": row.warn_at,
            "pause_statuses": row.pause_statuses,
            "escalations": row.escalations,
            "created_at": row.created_at,
            "updated_at": row.updated_at,
        }
    )


async def _check_policy(session: AsyncSession, body: SlaPolicyWrite) -> dict[str, Any]:
    unknown = unknown_fields(body.conditions)
    if unknown:
        raise _invalid("conditions", f"unknown ticket fields {unknown}")
    for index, target in enumerate(body.targets):
        if target.calendar_id is not None and (
            await repository.get_calendar(session, target.calendar_id) is None
        ):
            raise _invalid(f"targets.{index}.calendar_id", f"unknown calendar {target.calendar_id}")
    dumped = body.model_dump(mode="json")
    dumped["warn_at"] = sorted(set(dumped["warn_at"]))
    return dumped


@router.get("/sla-policies", response_model=Page[SlaPolicyRead], tags=["sla-policies"])
async def list_policies(
    session: Session, _: Reader, limit: Limit = 100, cursor: Cursor = None
) -> Page[SlaPolicyRead]:
    after: tuple[int, str] | None = None
    if cursor:
        position, policy_id = decode_cursor(cursor, 2)
        if not isinstance(position, int):
            raise _invalid("cursor", "not a cursor returned by this API")
        after = (position, str(policy_id))
    rows = await repository.list_policies(session, limit=limit + 1, after=after)
    next_cursor = None
    if len(rows) > limit:
        next_cursor = encode_cursor(rows[limit - 1].position, rows[limit - 1].id)
    return Page(items=[_policy_read(r) for r in rows[:limit]], next_cursor=next_cursor)


@router.post("/sla-policies", response_model=SlaPolicyRead, status_code=201, tags=["sla-policies"])
async def create_policy(
    body: SlaPolicyWrite, session: Session, runtime: Runtime, _: Admin
) -> SlaPolicyRead:
    fields = await _check_policy(session, body)
    now = runtime.clock.now()
    row = SlaPolicy(id=str(uuid.uuid4()), created_at=now, updated_at=now, **fields)
    session.add(row)
    await session.flush()
    await _recompute_open_timers(session, runtime)
    return _policy_read(row)


async def _policy_or_404(session: AsyncSession, policy_id: str) -> SlaPolicy:
    row = await repository.get_policy(session, policy_id)
    if row is None:
        raise NotFound(f"SLA policy {policy_id} not found")
    return row


@router.get("/sla-policies/{policy_id}", response_model=SlaPolicyRead, tags=["sla-policies"])
async def get_policy(policy_id: ItemId, session: Session, _: Reader) -> SlaPolicyRead:
    return _policy_read(await _policy_or_404(session, policy_id))


@router.put("/sla-policies/{policy_id}", response_model=SlaPolicyRead, tags=["sla-policies"])
async def replace_policy(
    policy_id: ItemId, body: SlaPolicyWrite, session: Session, runtime: Runtime, _: Admin
) -> SlaPolicyRead:
    row = await _policy_or_404(session, policy_id)
    for name, value in (await _check_policy(session, body)).items():
        setattr(row, name, value)
    row.updated_at = runtime.clock.now()
    await session.flush()
    await _recompute_open_timers(session, runtime)
    return _policy_read(row)


@router.delete("/sla-policies/{policy_id}", status_code=204, tags=["sla-policies"])
async def delete_policy(
    policy_id: ItemId, session: Session, runtime: Runtime, _: Admin
) -> Response:
    await session.delete(await _policy_or_404(session, policy_id))
    await session.flush()
    await _recompute_open_timers(session, runtime)
    return Response(status_code=204)


async def _recompute_open_timers(session: AsyncSession, runtime: ServiceRuntime) -> None:
    """A policy or calendar changed: re-target every open timer, keeping elapsed time."""
    ctx = service.SlaContext.for_session(session, runtime)
    now = runtime.clock.now()
    for ticket_id in await repository.open_ticket_ids(session):
        ticket = await repository.get_ticket(session, ticket_id, for_update=True)
        if ticket is None:
            continue
        await service.recompute(ctx, ticket, now)
    wake_scheduler(runtime)


# --- ops ----------------------------------------------------------------------------------------


@router.get("/breaches", response_model=Page[BreachRead], tags=["ops"])
async def list_breaches(
    session: Session,
    _: Reader,
    since: Annotated[QueryTime | None, Query(alias="from")] = None,
    until: Annotated[QueryTime | None, Query(alias="to")] = None,
    metric: Metric | None = None,
    priority: Priority | None = None,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> Page[BreachRead]:
    for name, value in (("from", since), ("to", until)):
        if value is not None and value.tzinfo is None:
            raise _invalid(name, "needs a time zone offset (RFC 3339)")
    after: tuple[datetime, str] | None = None
    if cursor:
        at, timer_id = decode_cursor(cursor, 2)
        try:
            after = (datetime.fromisoformat(str(at)), str(timer_id))
        except ValueError as exc:
            raise _invalid("cursor", "not a cursor returned by this API") from exc
    rows = await repository.breaches(
        session,
        since=since,
        until=until,
        metric=metric,
        priority=priority,
        limit=limit + 1,
        after=after,
    )
    items = [
        BreachRead(
            ticket_id=t.ticket_id,
            timer_id=t.id,
            metric=t.metric,
            priority=t.priority,
            policy_id=t.policy_id,
            started_at=t.started_at,
            due_at=t.due_at,
            breached_at=t.breached_at,
            met_at=t.met_at,
        )
        for t in rows[:limit]
    ]
    next_cursor = None
    if len(rows) > limit:
        last = rows[limit - 1]
        assert last.breached_at is not None
        next_cursor = encode_cursor(last.breached_at.isoformat(), last.id)
    return Page(items=items, next_cursor=next_cursor)


@router.get("/at-risk", response_model=Page[AtRiskRead], tags=["ops"])
async def at_risk(
    session: Session,
    runtime: Runtime,
    _: Reader,
    within_minutes: Annotated[int, Query(ge=1, le=7 * 24 * 60)] = 60,
    limit: Limit = 100,
) -> Page[AtRiskRead]:
    """Running timers not yet breached whose due instant is within ``within_minutes``."""
    now = runtime.clock.now()
    ctx = service.SlaContext.for_session(session, runtime)
    rows = await repository.due_before(session, now + timedelta(minutes=within_minutes), limit)
    items = []
    for t in rows:
        assert t.due_at is not None
        remaining = service.remaining_seconds(t, now, await ctx.calendar(t.calendar_id))
        items.append(
            AtRiskRead(
                ticket_id=t.ticket_id,
                timer_id=t.id,
                metric=t.metric,
                priority=t.priority,
                policy_id=t.policy_id,
                due_at=t.due_at,
                remaining_seconds=remaining if remaining is not None else 0.0,
            )
        )
    return Page(items=items, next_cursor=None)


@router.get("/reports/sla", tags=["ops"])
async def sla_report(
    session: Session,
    _: Reader,
    since: Annotated[QueryTime | None, Query(alias="from")] = None,
    until: Annotated[QueryTime | None, Query(alias="to")] = None,
    group_by: reports.GroupBy = "priority",
) -> dict[str, Any]:
    """Compliance and response figures per group of the tickets created in ``[from, to)``."""
    for name, value in (("from", since), ("to", until)):
        if value is not None and value.tzinfo is None:
            raise _invalid(name, "needs a time zone offset (RFC 3339)")
    tickets = await repository.tickets_created(session, since, until)
    timers = await repository.timers_of_tickets(session, [t.id for t in tickets])
    return {
        "from": since,
        "to": until,
        "group_by": group_by,
        "groups": reports.sla_report(tickets, timers, group_by),
    }


# --- outbound webhook subscriptions -------------------------------------------------------------


def _subscription_read(row: WebhookSubscription) -> WebhookSubscriptionRead:
    # The secret is write-only.
    return WebhookSubscriptionRead(
        id=row.id, url=row.url, event_types=row.event_types, created_at=row.created_at
    )


@router.get(
    "/webhook-subscriptions", response_model=Page[WebhookSubscriptionRead], tags=["webhooks"]
)
async def list_subscriptions(
    session: Session, _: Reader, limit: Limit = 100, cursor: Cursor = None
) -> Page[WebhookSubscriptionRead]:
    after = str(decode_cursor(cursor, 1)[0]) if cursor else None
    rows = await repository.list_subscriptions(session, limit=limit + 1, after=after)
    next_cursor = encode_cursor(rows[limit - 1].id) if len(rows) > limit else None
    return Page(items=[_subscription_read(r) for r in rows[:limit]], next_cursor=next_cursor)


@router.post(
    "/webhook-subscriptions",
    response_model=WebhookSubscriptionRead,
    status_code=201,
    tags=["webhooks"],
)
async def create_subscription(
    body: WebhookSubscriptionCreate, session: Session, runtime: Runtime, _: Admin
) -> WebhookSubscriptionRead:
    try:
        webhooks.check_secret(body.secret)
    except ValueError as exc:
        raise _invalid("secret", str(exc)) from exc
    row = WebhookSubscription(
        id=str(uuid.uuid4()),
        url=str(body.url),
        event_types=sorted(set(body.event_types)),
        secret=body.secret,
        created_at=runtime.clock.now(),
    )
    session.add(row)
    await session.flush()
    return _subscription_read(row)


async def _subscription_or_404(session: AsyncSession, subscription_id: str) -> WebhookSubscription:
    row = await session.get(WebhookSubscription, subscription_id)
    if row is None:
        raise NotFound(f"webhook subscription {subscription_id} not found")
    return row


@router.delete("/webhook-subscriptions/{subscription_id}", status_code=204, tags=["webhooks"])
async def delete_subscription(subscription_id: ItemId, session: Session, _: Admin) -> Response:
    await session.delete(await _subscription_or_404(session, subscription_id))
    return Response(status_code=204)


@router.get(
    "/webhook-subscriptions/{subscription_id}/deliveries",
    response_model=Page[WebhookDeliveryRead],
    tags=["webhooks"],
)
async def list_deliveries(
    subscription_id: ItemId,
    session: Session,
    _: Reader,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> Page[WebhookDeliveryRead]:
    """The delivery log of a subscription, newest first."""
    await _subscription_or_404(session, subscription_id)
    before: tuple[datetime, str] | None = None
    if cursor:
        at, delivery_id = decode_cursor(cursor, 2)
        try:
            before = (datetime.fromisoformat(str(at)), str(delivery_id))
        except ValueError as exc:
            raise _invalid("cursor", "not a cursor returned by this API") from exc
    rows = await repository.list_deliveries(
        session, subscription_id, limit=limit + 1, before=before
    )
    next_cursor = None
    if len(rows) > limit:
        next_cursor = encode_cursor(rows[limit - 1].created_at.isoformat(), rows[limit - 1].id)
    items = [WebhookDeliveryRead.model_validate(webhooks.delivery_log(r)) for r in rows[:limit]]
    return Page(items=items, next_cursor=next_cursor)
