"""The writes behind sla's admin endpoints: calendars, SLA policies, webhook subscriptions.

A calendar or policy change re-times the open timers it affects, keeping the business time
they have used so far. Like ``service.py`` (kept apart only for its length), functions take the
unit of work and never commit; validation names the field, so what is saved cannot fail later.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.sla import repository, service, webhooks
from services.sla.calendar import CalendarError, parse_calendar
from services.sla.models import CalendarRow, SlaPolicy, WebhookSubscription
from services.sla.scheduler import wake_after_commit
from services.sla.schemas import CalendarWrite, SlaPolicyWrite, WebhookSubscriptionCreate
from services.sla.service import SlaContext
from shared.conditions import unknown_fields
from shared.errors import Conflict, Unprocessable, found


def invalid(field: str, message: str) -> Unprocessable:
    """The 422 naming the field at fault."""
    return Unprocessable(f"{field}: {message}", details=[{"field": field, "message": message}])


# --- calendars ----------------------------------------------------------------------------------


def _calendar_fields(body: CalendarWrite) -> dict[str, Any]:
    try:
        parse_calendar(body.timezone, body.hours, body.holidays)
    except CalendarError as exc:
        raise invalid(exc.field, exc.message) from exc
    return {
        "name": body.name,
        "timezone": body.timezone,
        "hours": body.hours,
        "holidays": sorted(set(body.holidays)),
    }


async def calendar_or_404(session: AsyncSession, calendar_id: str) -> CalendarRow:
    return found(await repository.get_calendar(session, calendar_id), f"calendar {calendar_id}")


async def create_calendar(ctx: SlaContext, body: CalendarWrite) -> CalendarRow:
    fields = _calendar_fields(body)
    now = ctx.clock.now()
    row = CalendarRow(id=str(uuid.uuid4()), created_at=now, updated_at=now, **fields)
    ctx.session.add(row)
    await ctx.session.flush()
    return row


async def replace_calendar(ctx: SlaContext, calendar_id: str, body: CalendarWrite) -> CalendarRow:
    """Timers on this calendar keep the business time used so far (on the old hours) and get
    new due instants on the new hours."""
    row = await calendar_or_404(ctx.session, calendar_id)
    fields = _calendar_fields(body)
    now = ctx.clock.now()
    timers = await repository.open_timers_on_calendar(ctx.session, calendar_id)
    for timer in timers:
        await service.checkpoint(ctx, timer, now)
    for name, value in fields.items():
        setattr(row, name, value)
    row.updated_at = now
    await ctx.session.flush()
    ctx.forget_calendar(calendar_id)
    for timer in timers:
        service.schedule(timer, await ctx.calendar(calendar_id))
    wake_after_commit(ctx)
    return row


async def delete_calendar(ctx: SlaContext, calendar_id: str) -> None:
    row = await calendar_or_404(ctx.session, calendar_id)
    users = await repository.policies_using_calendar(ctx.session, calendar_id)
    if users:
        raise Conflict(
            f"calendar {calendar_id} is used by SLA policies {users}",
            details=[{"field": "calendar_id", "policies": users}],
        )
    await ctx.session.delete(row)


# --- SLA policies -------------------------------------------------------------------------------


async def _policy_fields(ctx: SlaContext, body: SlaPolicyWrite) -> dict[str, Any]:
    unknown = unknown_fields(body.conditions)
    if unknown:
        raise invalid("conditions", f"unknown ticket fields {unknown}")
    for index, target in enumerate(body.targets):
        if target.calendar_id is not None and (
            await repository.get_calendar(ctx.session, target.calendar_id) is None
        ):
            raise invalid(f"targets.{index}.calendar_id", f"unknown calendar {target.calendar_id}")
    dumped = body.model_dump(mode="json")
    dumped["warn_at"] = sorted(set(dumped["warn_at"]))
    return dumped


async def policy_or_404(session: AsyncSession, policy_id: str) -> SlaPolicy:
    return found(await repository.get_policy(session, policy_id), f"SLA policy {policy_id}")


async def create_policy(ctx: SlaContext, body: SlaPolicyWrite) -> SlaPolicy:
    fields = await _policy_fields(ctx, body)
    now = ctx.clock.now()
    row = SlaPolicy(id=str(uuid.uuid4()), created_at=now, updated_at=now, **fields)
    ctx.session.add(row)
    await ctx.session.flush()
    ctx.forget_policies()
    await recompute_open_timers(ctx)
    return row


async def replace_policy(ctx: SlaContext, policy_id: str, body: SlaPolicyWrite) -> SlaPolicy:
    row = await policy_or_404(ctx.session, policy_id)
    for name, value in (await _policy_fields(ctx, body)).items():
        setattr(row, name, value)
    row.updated_at = ctx.clock.now()
    await ctx.session.flush()
    ctx.forget_policies()
    await recompute_open_timers(ctx)
    return row


async def delete_policy(ctx: SlaContext, policy_id: str) -> None:
    await ctx.session.delete(await policy_or_404(ctx.session, policy_id))
    await ctx.session.flush()
    ctx.forget_policies()
    await recompute_open_timers(ctx)


async def recompute_open_timers(ctx: SlaContext) -> None:
    """A policy changed: re-target every open timer, keeping elapsed time."""
    now = ctx.clock.now()
    for ticket_id in await repository.open_ticket_ids(ctx.session):
        ticket = await repository.get_ticket(ctx.session, ticket_id, for_update=True)
        if ticket is None:
            continue
        await service.recompute(ctx, ticket, now)
    wake_after_commit(ctx)


# --- outbound webhook subscriptions -------------------------------------------------------------


async def subscription_or_404(session: AsyncSession, subscription_id: str) -> WebhookSubscription:
    row = await repository.get_subscription(session, subscription_id)
    return found(row, f"webhook subscription {subscription_id}")


async def create_subscription(
    ctx: SlaContext, body: WebhookSubscriptionCreate
) -> WebhookSubscription:
    try:
        webhooks.check_secret(body.secret)
    except ValueError as exc:
        raise invalid("secret", str(exc)) from exc
    row = WebhookSubscription(
        id=str(uuid.uuid4()),
        url=str(body.url),
        event_types=sorted(set(body.event_types)),
        secret=body.secret,
        created_at=ctx.clock.now(),
    )
    ctx.session.add(row)
    await ctx.session.flush()
    ctx.forget_subscriptions()
    return row


async def delete_subscription(ctx: SlaContext, subscription_id: str) -> None:
    await ctx.session.delete(await subscription_or_404(ctx.session, subscription_id))
    ctx.forget_subscriptions()
