"""survey's HTTP API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query

from services.survey import repository
from services.survey.models import Survey
from services.survey.schemas import SurveyRead
from shared.app import Session
from shared.auth import Reader
from shared.errors import NotFound
from shared.pagination import Cursor, Limit, Page, decode_cursor, encode_cursor

router = APIRouter(prefix="/v1")

SurveyStatus = Literal["scheduled", "sent", "answered", "cancelled", "expired"]


def _read(survey: Survey) -> SurveyRead:
    return SurveyRead(
        id=survey.id,
        ticket_id=survey.ticket_id,
        policy_id=survey.policy_id,
        kind=survey.kind,
        question=survey.question,
        status=survey.status,
        requester_id=survey.requester_id,
        assignee_id=survey.assignee_id,
        group=survey.group,
        channel=survey.channel,
        created_at=survey.created_at,
        send_at=survey.send_at,
        sent_at=survey.sent_at,
        expires_at=survey.expires_at,
        answered_at=survey.answered_at,
        score=survey.score,
        comment=survey.comment,
    )


@router.get("/surveys", response_model=Page[SurveyRead], tags=["surveys"])
async def list_surveys(
    session: Session,
    _: Reader,
    ticket_id: Annotated[str | None, Query(max_length=255)] = None,
    status: Annotated[SurveyStatus | None, Query()] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[SurveyRead]:
    after = None
    if cursor:
        created_at, survey_id = decode_cursor(cursor, 2)
        try:
            after = (datetime.fromisoformat(created_at), str(survey_id))
        except (TypeError, ValueError):
            after = None
    surveys = await repository.list_surveys(
        session, ticket_id=ticket_id, status=status, limit=limit + 1, after=after
    )
    next_cursor = None
    if len(surveys) > limit:
        last = surveys[limit - 1]
        next_cursor = encode_cursor(last.created_at.isoformat(), last.id)
    return Page(items=[_read(s) for s in surveys[:limit]], next_cursor=next_cursor)


@router.get("/surveys/{survey_id}", response_model=SurveyRead, tags=["surveys"])
async def get_survey(
    survey_id: Annotated[str, Path(max_length=64)], session: Session, _: Reader
) -> SurveyRead:
    survey = await repository.get_survey(session, survey_id)
    if survey is None:
        raise NotFound(f"survey {survey_id} not found")
    return _read(survey)
