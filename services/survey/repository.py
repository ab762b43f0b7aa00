"""Every query survey makes."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import and_, exists, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.survey.models import Survey, SurveyDelivery, SurveyPolicy
from shared.db import is_postgres


async def get_survey(session: AsyncSession, survey_id: str) -> Survey | None:
    return await session.get(Survey, survey_id)


async def survey_for(session: AsyncSession, ticket_id: str, policy_id: str) -> Survey | None:
    statement = select(Survey).where(Survey.ticket_id == ticket_id, Survey.policy_id == policy_id)
    return (await session.execute(statement)).scalar_one_or_none()


async def scheduled_for_ticket(session: AsyncSession, ticket_id: str) -> Sequence[Survey]:
    statement = (
        select(Survey)
        .where(Survey.ticket_id == ticket_id, Survey.status == "scheduled")
        .with_for_update()
    )
    return (await session.execute(statement)).scalars().all()


async def list_surveys(
    session: AsyncSession,
    *,
    ticket_id: str | None,
    status: str | None,
    limit: int,
    after: tuple[datetime, str] | None,
) -> Sequence[Survey]:
    statement = select(Survey)
    if ticket_id:
        statement = statement.where(Survey.ticket_id == ticket_id)
    if status:
        statement = statement.where(Survey.status == status)
    if after is not None:
        created_at, survey_id = after
        statement = statement.where(
            or_(
                Survey.created_at < created_at,
                and_(Survey.created_at == created_at, Survey.id < survey_id),
            )
        )
    statement = statement.order_by(Survey.created_at.desc(), Survey.id.desc()).limit(limit)
    return (await session.execute(statement)).scalars().all()


async def survey_by_token_hash(session: AsyncSession, token_hash: str) -> Survey | None:
    statement = select(Survey).where(Survey.token_hash == token_hash).with_for_update()
    return (await session.execute(statement)).scalar_one_or_none()


async def requester_surveyed_since(
    session: AsyncSession, requester_id: str, since: datetime, *, exclude_ticket_id: str
) -> bool:
    """Whether the requester got (or is due) a survey for another ticket since ``since``."""
    statement = select(
        exists().where(
            Survey.requester_id == requester_id,
            Survey.ticket_id != exclude_ticket_id,
            Survey.status != "cancelled",
            Survey.created_at >= since,
        )
    )
    return bool(await session.scalar(statement))


async def claim_due(session: AsyncSession, now: datetime, limit: int) -> Sequence[Survey]:
    """Scheduled surveys due by ``now``, locked; other senders skip them (PostgreSQL)."""
    statement = (
        select(Survey)
        .where(Survey.status == "scheduled", Survey.send_at <= now)
        .order_by(Survey.send_at, Survey.id)
        .limit(limit)
    )
    if is_postgres(session):
        statement = statement.with_for_update(skip_locked=True)
    return (await session.execute(statement)).scalars().all()


async def claim_expired(session: AsyncSession, now: datetime, limit: int) -> Sequence[Survey]:
    statement = (
        select(Survey)
        .where(Survey.status == "sent", Survey.expires_at <= now)
        .order_by(Survey.expires_at, Survey.id)
        .limit(limit)
    )
    if is_postgres(session):
        statement = statement.with_for_update(skip_locked=True)
    return (await session.execute(statement)).scalars().all()


async def deliveries_of(
    session: AsyncSession, survey_ids: Sequence[str]
) -> dict[str, list[SurveyDelivery]]:
    """The deliveries of these surveys, oldest first, by survey id."""
    found: dict[str, list[SurveyDelivery]] = {survey_id: [] for survey_id in survey_ids}
    if not survey_ids:
        return found
    statement = (
        select(SurveyDelivery)
        .where(SurveyDelivery.survey_id.in_(list(survey_ids)))
        .order_by(SurveyDelivery.created_at, SurveyDelivery.id)
    )
    for row in (await session.execute(statement)).scalars().all():
        found.setdefault(row.survey_id, []).append(row)
    return found


async def answered_or_sent_between(
    session: AsyncSession,
    *,
    start: datetime | None,
    end: datetime | None,
    kind: str | None,
) -> Sequence[Survey]:
    """Surveys sent in ``[start, end)`` (the population of a satisfaction report)."""
    statement = select(Survey).where(Survey.sent_at.is_not(None))
    if start is not None:
        statement = statement.where(Survey.sent_at >= start)
    if end is not None:
        statement = statement.where(Survey.sent_at < end)
    if kind:
        statement = statement.where(Survey.kind == kind)
    return (await session.execute(statement)).scalars().all()


# --- policies ---------------------------------------------------------------------------------


async def get_policy(session: AsyncSession, policy_id: str) -> SurveyPolicy | None:
    return await session.get(SurveyPolicy, policy_id)


async def list_policies_ordered(session: AsyncSession) -> Sequence[SurveyPolicy]:
    statement = select(SurveyPolicy).order_by(
        SurveyPolicy.position, SurveyPolicy.created_at, SurveyPolicy.id
    )
    return (await session.execute(statement)).scalars().all()


async def list_policies_page(
    session: AsyncSession, *, limit: int, after: tuple[int, str] | None
) -> Sequence[SurveyPolicy]:
    statement = select(SurveyPolicy)
    if after is not None:
        position, policy_id = after
        statement = statement.where(
            or_(
                SurveyPolicy.position > position,
                and_(SurveyPolicy.position == position, SurveyPolicy.id > policy_id),
            )
        )
    statement = statement.order_by(SurveyPolicy.position, SurveyPolicy.id).limit(limit)
    return (await session.execute(statement)).scalars().all()


async def policy_expiry_hours(session: AsyncSession) -> dict[str, int]:
    rows = await session.execute(select(SurveyPolicy.id, SurveyPolicy.expires_after_hours))
    return {policy_id: hours for policy_id, hours in rows.all()}
