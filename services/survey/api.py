"""survey's HTTP API."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Response

from services.survey import reports, repository, service
from services.survey.models import Survey, SurveyDelivery, SurveyPolicy
from services.survey.schemas import (
    AnswerRead,
    Delivery,
    SatisfactionReport,
    SurveyAnswer,
    SurveyPolicyRead,
    SurveyPolicyWrite,
    SurveyRead,
)
from shared.app import Runtime, Session, context
from shared.auth import Admin, Reader
from shared.conditions import Conditions
from shared.delivery import DeliveryRead, delivery_read
from shared.errors import Unprocessable, found
from shared.events import SurveyKind
from shared.pagination import Cursor, Limit, Page
from shared.settings import Settings
from shared.types import QueryTime

router = APIRouter(prefix="/v1")

SurveyStatus = Literal["scheduled", "sent", "answered", "cancelled", "expired"]
GroupBy = Literal["agent", "group", "channel"]
PathId = Annotated[str, Path(max_length=64)]
Context = Annotated[service.SurveyContext, Depends(context(service.SurveyContext))]


async def _secret(session: Session, runtime: Runtime) -> str | None:
    return await service.known_link_secret(session, runtime.settings.survey_token_secret)


def _read(
    survey: Survey, settings: Settings, secret: str | None, deliveries: list[SurveyDelivery]
) -> SurveyRead:
    token = service.recover_token(secret, survey)
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
        cancelled_at=survey.cancelled_at,
        score=survey.score,
        comment=survey.comment,
        delivery_status=survey.delivery_status,
        token_url=service.token_url(settings.public_base_url, token) if token else None,
        deliveries=[DeliveryRead.model_validate(delivery_read(d)) for d in deliveries],
    )


# --- surveys ----------------------------------------------------------------------------------


@router.get("/surveys", response_model=Page[SurveyRead], tags=["surveys"])
async def list_surveys(
    session: Session,
    runtime: Runtime,
    _: Reader,
    ticket_id: Annotated[str | None, Query(max_length=255)] = None,
    status: Annotated[SurveyStatus | None, Query()] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[SurveyRead]:
    surveys = await repository.page_surveys(
        session, ticket_id=ticket_id, status=status, limit=limit, cursor=cursor
    )
    secret = await _secret(session, runtime)
    deliveries = await repository.deliveries_of(session, [s.id for s in surveys.rows])
    return surveys.page(lambda s: _read(s, runtime.settings, secret, deliveries[s.id]))


@router.get("/surveys/{survey_id}", response_model=SurveyRead, tags=["surveys"])
async def get_survey(
    survey_id: PathId, session: Session, runtime: Runtime, _: Reader
) -> SurveyRead:
    survey = found(await repository.get_survey(session, survey_id), f"survey {survey_id}")
    deliveries = await repository.deliveries_of(session, [survey.id])
    secret = await _secret(session, runtime)
    return _read(survey, runtime.settings, secret, deliveries[survey.id])


@router.post("/surveys/responses/{token}", response_model=AnswerRead, tags=["surveys"])
async def answer_survey(
    token: Annotated[str, Path(max_length=200)],
    body: SurveyAnswer,
    ctx: Context,
) -> AnswerRead:
    """Record an answer (no API key: the single-use token is the credential)."""
    survey = await service.answer(ctx, token, body.score, body.comment, body.kind)
    assert survey.score is not None and survey.answered_at is not None
    return AnswerRead(
        survey_id=survey.id,
        status="answered",
        score=survey.score,
        comment=survey.comment,
        answered_at=survey.answered_at,
    )


# --- policies ---------------------------------------------------------------------------------


def _policy_read(policy: SurveyPolicy, *, reveal_secret: bool = False) -> SurveyPolicyRead:
    """The webhook secret is shown only to the admin who just wrote it (it may be generated)."""
    shown = dict(policy.delivery or {})
    if not reveal_secret:
        shown["webhook_secret"] = None
    return SurveyPolicyRead(
        id=policy.id,
        name=policy.name,
        kind=policy.kind,
        position=policy.position,
        conditions=Conditions.model_validate(policy.conditions),
        delay_minutes=policy.delay_minutes,
        cooldown_days=policy.cooldown_days,
        sample_rate=policy.sample_rate,
        expires_after_hours=policy.expires_after_hours,
        question=policy.question,
        delivery=Delivery.model_validate(shown),
        created_at=policy.created_at,
        updated_at=policy.updated_at,
    )


@router.get("/survey-policies", response_model=Page[SurveyPolicyRead], tags=["survey-policies"])
async def list_policies(
    session: Session, _: Reader, limit: Limit = 50, cursor: Cursor = None
) -> Page[SurveyPolicyRead]:
    policies = await repository.page_policies(session, limit=limit, cursor=cursor)
    return policies.page(_policy_read)


@router.post(
    "/survey-policies",
    response_model=SurveyPolicyRead,
    status_code=201,
    tags=["survey-policies"],
)
async def create_policy(body: SurveyPolicyWrite, ctx: Context, _: Admin) -> SurveyPolicyRead:
    policy = await service.create_policy(ctx, body)
    return _policy_read(policy, reveal_secret=True)


@router.get(
    "/survey-policies/{policy_id}", response_model=SurveyPolicyRead, tags=["survey-policies"]
)
async def get_policy(policy_id: PathId, session: Session, _: Reader) -> SurveyPolicyRead:
    return _policy_read(await service.policy_or_404(session, policy_id))


@router.put(
    "/survey-policies/{policy_id}", response_model=SurveyPolicyRead, tags=["survey-policies"]
)
async def replace_policy(
    policy_id: PathId, body: SurveyPolicyWrite, ctx: Context, _: Admin
) -> SurveyPolicyRead:
    policy = await service.replace_policy(ctx, policy_id, body)
    return _policy_read(policy, reveal_secret=True)


@router.delete("/survey-policies/{policy_id}", status_code=204, tags=["survey-policies"])
async def delete_policy(policy_id: PathId, ctx: Context, _: Admin) -> Response:
    """Surveys already scheduled by the policy are still sent (they carry what they need)."""
    await service.delete_policy(ctx, policy_id)
    return Response(status_code=204)


# --- reports ----------------------------------------------------------------------------------


@router.get("/reports/satisfaction", response_model=SatisfactionReport, tags=["reports"])
async def satisfaction_report(
    session: Session,
    _: Reader,
    from_: Annotated[QueryTime | None, Query(alias="from")] = None,
    to: Annotated[QueryTime | None, Query()] = None,
    kind: Annotated[SurveyKind | None, Query()] = None,
    group_by: Annotated[GroupBy | None, Query()] = None,
) -> SatisfactionReport:
    """Surveys sent in ``[from, to)``: counts, response rate, the kind's score and average."""
    for name, value in (("from", from_), ("to", to)):
        if value is not None and value.tzinfo is None:
            raise Unprocessable(f"{name}: needs a UTC offset (RFC 3339)", details=[{"field": name}])
    if from_ is not None and to is not None and to <= from_:
        raise Unprocessable("to: must be after from", details=[{"field": "to"}])
    surveys = await repository.answered_or_sent_between(session, start=from_, end=to, kind=kind)
    return SatisfactionReport(
        from_=from_,
        to=to,
        kind=kind,
        group_by=group_by,
        items=reports.satisfaction_rows(surveys, group_by),
    )
