"""sla's HTTP API: calendars, SLA policies, per-ticket timers, breaches and at-risk timers."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Response

from services.sla import admin, reports, repository, service, webhooks
from services.sla.models import CalendarRow, SlaPolicy, WebhookSubscription
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
from shared.app import Session, context
from shared.auth import Admin, Reader
from shared.errors import NotFound
from shared.events import Metric, Priority
from shared.pagination import Cursor, Limit, Page
from shared.types import QueryTime

router = APIRouter(prefix="/v1")

TicketId = Annotated[str, Path(min_length=3, max_length=255)]
ItemId = Annotated[str, Path(min_length=1, max_length=64)]
Context = Annotated[service.SlaContext, Depends(context(service.SlaContext))]


# --- per ticket ---------------------------------------------------------------------------------


@router.get("/tickets/{ticket_id}/sla", response_model=TicketSlaRead, tags=["sla"])
async def ticket_sla(ticket_id: TicketId, ctx: Context, _: Reader) -> TicketSlaRead:
    found = await ticket_sla_read(ctx, ticket_id)
    if found is None:
        raise NotFound(f"ticket {ticket_id} has no SLA yet (unknown to sla)")
    return found


async def ticket_sla_read(ctx: service.SlaContext, ticket_id: str) -> TicketSlaRead | None:
    """A ticket's SLA timers as the API shows them; None if sla does not know the ticket."""
    ticket = await repository.get_ticket(ctx.session, ticket_id)
    if ticket is None:
        return None
    now = ctx.clock.now()
    timers = await repository.timers_of(ctx.session, ticket_id)
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


@router.get("/calendars", response_model=Page[CalendarRead], tags=["calendars"])
async def list_calendars(
    session: Session, _: Reader, limit: Limit = 100, cursor: Cursor = None
) -> Page[CalendarRead]:
    calendars = await repository.page_calendars(session, limit=limit, cursor=cursor)
    return calendars.page(_calendar_read)


@router.post("/calendars", response_model=CalendarRead, status_code=201, tags=["calendars"])
async def create_calendar(body: CalendarWrite, ctx: Context, _: Admin) -> CalendarRead:
    return _calendar_read(await admin.create_calendar(ctx, body))


@router.get("/calendars/{calendar_id}", response_model=CalendarRead, tags=["calendars"])
async def get_calendar(calendar_id: ItemId, session: Session, _: Reader) -> CalendarRead:
    return _calendar_read(await admin.calendar_or_404(session, calendar_id))


@router.put("/calendars/{calendar_id}", response_model=CalendarRead, tags=["calendars"])
async def replace_calendar(
    calendar_id: ItemId, body: CalendarWrite, ctx: Context, _: Admin
) -> CalendarRead:
    row = await admin.replace_calendar(ctx, calendar_id, body)
    return _calendar_read(row)


@router.delete("/calendars/{calendar_id}", status_code=204, tags=["calendars"])
async def delete_calendar(calendar_id: ItemId, ctx: Context, _: Admin) -> Response:
    await admin.delete_calendar(ctx, calendar_id)
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


@router.get("/sla-policies", response_model=Page[SlaPolicyRead], tags=["sla-policies"])
async def list_policies(
    session: Session, _: Reader, limit: Limit = 100, cursor: Cursor = None
) -> Page[SlaPolicyRead]:
    policies = await repository.page_policies(session, limit=limit, cursor=cursor)
    return policies.page(_policy_read)


@router.post("/sla-policies", response_model=SlaPolicyRead, status_code=201, tags=["sla-policies"])
async def create_policy(body: SlaPolicyWrite, ctx: Context, _: Admin) -> SlaPolicyRead:
    row = await admin.create_policy(ctx, body)
    return _policy_read(row)


@router.get("/sla-policies/{policy_id}", response_model=SlaPolicyRead, tags=["sla-policies"])
async def get_policy(policy_id: ItemId, session: Session, _: Reader) -> SlaPolicyRead:
    return _policy_read(await admin.policy_or_404(session, policy_id))


@router.put("/sla-policies/{policy_id}", response_model=SlaPolicyRead, tags=["sla-policies"])
async def replace_policy(
    policy_id: ItemId, body: SlaPolicyWrite, ctx: Context, _: Admin
) -> SlaPolicyRead:
    row = await admin.replace_policy(ctx, policy_id, body)
    return _policy_read(row)


@router.delete("/sla-policies/{policy_id}", status_code=204, tags=["sla-policies"])
async def delete_policy(policy_id: ItemId, ctx: Context, _: Admin) -> Response:
    await admin.delete_policy(ctx, policy_id)
    return Response(status_code=204)


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
            raise admin.invalid(name, "needs a time zone offset (RFC 3339)")
    breaches = await repository.page_breaches(
        session,
        since=since,
        until=until,
        metric=metric,
        priority=priority,
        limit=limit,
        cursor=cursor,
    )
    return breaches.page(
        lambda t: BreachRead(
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
    )


@router.get("/at-risk", response_model=Page[AtRiskRead], tags=["ops"])
async def at_risk(
    ctx: Context,
    _: Reader,
    within_minutes: Annotated[int, Query(ge=1, le=7 * 24 * 60)] = 60,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> Page[AtRiskRead]:
    """Running timers not yet breached whose due instant is within ``within_minutes``."""
    now = ctx.clock.now()
    timers = await repository.page_due_before(
        ctx.session, now + timedelta(minutes=within_minutes), limit=limit, cursor=cursor
    )
    items = []
    for t in timers.rows:
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
    return Page(items=items, next_cursor=timers.next_cursor)


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
            raise admin.invalid(name, "needs a time zone offset (RFC 3339)")
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
    subscriptions = await repository.page_subscriptions(session, limit=limit, cursor=cursor)
    return subscriptions.page(_subscription_read)


@router.post(
    "/webhook-subscriptions",
    response_model=WebhookSubscriptionRead,
    status_code=201,
    tags=["webhooks"],
)
async def create_subscription(
    body: WebhookSubscriptionCreate, ctx: Context, _: Admin
) -> WebhookSubscriptionRead:
    return _subscription_read(await admin.create_subscription(ctx, body))


@router.delete("/webhook-subscriptions/{subscription_id}", status_code=204, tags=["webhooks"])
async def delete_subscription(subscription_id: ItemId, ctx: Context, _: Admin) -> Response:
    await admin.delete_subscription(ctx, subscription_id)
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
    await admin.subscription_or_404(session, subscription_id)
    deliveries = await repository.page_deliveries(
        session, subscription_id, limit=limit, cursor=cursor
    )
    return deliveries.page(lambda r: WebhookDeliveryRead.model_validate(webhooks.delivery_log(r)))
