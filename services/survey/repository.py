"""Every query survey makes."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.survey.models import Survey


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
