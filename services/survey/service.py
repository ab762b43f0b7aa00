"""survey's business rules. Functions take the session and the outbox and never commit."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from services.survey import repository
from services.survey.models import Survey
from shared import events as ev
from shared.clock import Clock
from shared.outbox import Outbox


@dataclass(frozen=True)
class PolicyView:
    id: str
    kind: str
    question: str
    delay_minutes: int
    expires_after_hours: int


# Applies when no survey policy is configured: a CSAT survey shortly after the solve.
DEFAULT_POLICY = PolicyView(
    id="default-csat",
    kind="csat",
    question="How would you rate the support you received?",
    delay_minutes=60,
    expires_after_hours=7 * 24,
)


@dataclass
class SurveyContext:
    session: AsyncSession
    outbox: Outbox
    clock: Clock
    traceparent: str | None = None

    async def emit(self, event: ev.Event) -> None:
        await self.outbox.add(self.session, event, traceparent=self.traceparent)


async def schedule(
    ctx: SurveyContext, ticket: ev.TicketSnapshot, policy: PolicyView
) -> Survey | None:
    """Schedule a survey for a solved ticket; None if this policy already has one for it."""
    if await repository.survey_for(ctx.session, ticket.id, policy.id) is not None:
        return None
    now = ctx.clock.now()
    solved_at = ticket.solved_at or now
    survey = Survey(
        id=str(uuid.uuid4()),
        ticket_id=ticket.id,
        policy_id=policy.id,
        kind=policy.kind,
        question=policy.question,
        status="scheduled",
        requester_id=ticket.requester.id,
        requester_email=ticket.requester.email,
        assignee_id=ticket.assignee_id,
        group=ticket.group,
        channel=ticket.channel,
        priority=ticket.priority,
        created_at=now,
        send_at=solved_at + timedelta(minutes=policy.delay_minutes),
    )
    ctx.session.add(survey)
    await ctx.session.flush()
    await ctx.emit(
        ev.SurveyScheduled(
            survey_id=survey.id,
            ticket_id=ticket.id,
            policy_id=policy.id,
            kind=policy.kind,
            send_at=survey.send_at,
        )
    )
    return survey


async def cancel_scheduled(ctx: SurveyContext, ticket_id: str, reason: str) -> int:
    cancelled = 0
    for survey in await repository.scheduled_for_ticket(ctx.session, ticket_id):
        survey.status = "cancelled"
        survey.cancelled_at = ctx.clock.now()
        await ctx.emit(
            ev.SurveyCancelled(
                survey_id=survey.id,
                ticket_id=ticket_id,
                policy_id=survey.policy_id,
                kind=survey.kind,
                reason=reason,
            )
        )
        cancelled += 1
    return cancelled
