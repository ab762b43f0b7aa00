"""Every query survey makes."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import exists, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from services.survey.models import Survey, SurveyDelivery, SurveyPolicy, TokenSecret
from shared.db import dialect_name, insert_ignoring_conflicts, is_postgres
from shared.pagination import Slice, paginate


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


async def page_surveys(
    session: AsyncSession,
    *,
    ticket_id: str | None,
    status: str | None,
    limit: int,
    cursor: str | None,
) -> Slice[Survey]:
    """Newest first."""
    statement = select(Survey)
    if ticket_id:
        statement = statement.where(Survey.ticket_id == ticket_id)
    if status:
        statement = statement.where(Survey.status == status)
    keys = (Survey.created_at, Survey.id)
    return await paginate(
        session, statement, keys=keys, limit=limit, cursor=cursor, descending=True
    )


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


async def _claim(
    session: AsyncSession, status: str, at: InstrumentedAttribute[Any], now: datetime, limit: int
) -> Sequence[Survey]:
    """Surveys in ``status`` whose ``at`` has come by ``now``, earliest first, locked; other
    senders skip them (PostgreSQL)."""
    statement = select(Survey).where(Survey.status == status, at <= now)
    statement = statement.order_by(at, Survey.id).limit(limit)
    if is_postgres(session):
        statement = statement.with_for_update(skip_locked=True)
    return (await session.execute(statement)).scalars().all()


async def claim_due(session: AsyncSession, now: datetime, limit: int) -> Sequence[Survey]:
    """Scheduled surveys due to be sent."""
    return await _claim(session, "scheduled", Survey.send_at, now, limit)


async def claim_expired(session: AsyncSession, now: datetime, limit: int) -> Sequence[Survey]:
    """Sent surveys past their expiry."""
    return await _claim(session, "sent", Survey.expires_at, now, limit)


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


async def page_policies(
    session: AsyncSession, *, limit: int, cursor: str | None
) -> Slice[SurveyPolicy]:
    keys = (SurveyPolicy.position, SurveyPolicy.id)
    return await paginate(session, select(SurveyPolicy), keys=keys, limit=limit, cursor=cursor)


async def policy_expiry_hours(session: AsyncSession) -> dict[str, int]:
    rows = await session.execute(select(SurveyPolicy.id, SurveyPolicy.expires_after_hours))
    return {policy_id: hours for policy_id, hours in rows.all()}


async def kept_token_secret(session: AsyncSession) -> str | None:
    """The secret kept in the schema, if the sender has made one yet (reads only)."""
    row = await session.get(TokenSecret, "survey-links")
    return row.secret if row is not None else None


async def stored_token_secret(session: AsyncSession, candidate: str, now: datetime) -> str:
    """The secret kept in the schema; ``candidate`` becomes it if none is kept yet. Two
    instances racing both end with the one that was stored first."""
    await session.execute(
        insert_ignoring_conflicts(
            TokenSecret.__table__,
            dialect_name(session),
            name="survey-links",
            secret=candidate,
            created_at=now,
        )
    )
    row = await session.get(TokenSecret, "survey-links", populate_existing=True)
    assert row is not None
    return row.secret
