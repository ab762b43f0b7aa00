"""survey's HTTP API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Response

from services.survey import delivery, reports, repository, service
from services.survey.models import Survey, SurveyDelivery, SurveyPolicy
from services.survey.schemas import (
    DEFAULT_DELAY_MINUTES,
    AnswerRead,
    Delivery,
    SatisfactionReport,
    SurveyAnswer,
    SurveyPolicyRead,
    SurveyPolicyWrite,
    SurveyRead,
)
from shared.app import Runtime, Session
from shared.auth import Admin, Reader
from shared.conditions import Conditions, unknown_fields
from shared.delivery import DeliveryRead, delivery_read
from shared.errors import NotFound, Unprocessable
from shared.events import SurveyKind
from shared.pagination import Cursor, Limit, Page, decode_cursor, encode_cursor
from shared.settings import Settings
from shared.types import QueryTime

router = APIRouter(prefix="/v1")

SurveyStatus = Literal["scheduled", "sent", "answered", "cancelled", "expired"]
GroupBy = Literal["agent", "group", "channel"]
PathId = Annotated[str, Path(max_length=64)]


def _read(survey: Survey, settings: Settings, deliveries: list[SurveyDelivery]) -> SurveyRead:
    token = service.recover_token(settings.survey_token_secret, survey)
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
    after = None
    if cursor:
        created_at, survey_id = decode_cursor(cursor, 2)
        try:
            after = (datetime.fromisoformat(created_at), str(survey_id))
        except (TypeError, ValueError) as exc:
            raise Unprocessable("cursor: not a cursor returned by this API") from exc
    surveys = await repository.list_surveys(
        session, ticket_id=ticket_id, status=status, limit=limit + 1, after=after
    )
    next_cursor = None
    if len(surveys) > limit:
        last = surveys[limit - 1]
        next_cursor = encode_cursor(last.created_at.isoformat(), last.id)
    deliveries = await repository.deliveries_of(session, [s.id for s in surveys[:limit]])
    items = [_read(s, runtime.settings, deliveries[s.id]) for s in surveys[:limit]]
    return Page(items=items, next_cursor=next_cursor)


@router.get("/surveys/{survey_id}", response_model=SurveyRead, tags=["surveys"])
async def get_survey(
    survey_id: PathId, session: Session, runtime: Runtime, _: Reader
) -> SurveyRead:
    survey = await repository.get_survey(session, survey_id)
    if survey is None:
        raise NotFound(f"survey {survey_id} not found")
    deliveries = await repository.deliveries_of(session, [survey.id])
    return _read(survey, runtime.settings, deliveries[survey.id])


@router.post("/surveys/responses/{token}", response_model=AnswerRead, tags=["surveys"])
async def answer_survey(
    token: Annotated[str, Path(max_length=200)],
    body: SurveyAnswer,
    session: Session,
    runtime: Runtime,
) -> AnswerRead:
    """Record an answer (no API key: the single-use token is the credential)."""
    ctx = service.SurveyContext.for_session(session, runtime)
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


def _apply(policy: SurveyPolicy, body: SurveyPolicyWrite) -> None:
    unknown = unknown_fields(body.conditions)
    if unknown:
        raise Unprocessable(
            f"conditions: unknown field {unknown[0]!r}",
            details=[{"field": "conditions", "message": f"unknown field {f!r}"} for f in unknown],
        )
    delivery_body = body.delivery.model_dump(mode="json")
    if body.delivery.webhook_url is not None:
        # Keep the secret a PUT does not mention: subscribers keep verifying.
        kept = (policy.delivery or {}).get("webhook_secret") if policy.delivery else None
        secret = body.delivery.webhook_secret or kept or delivery.new_webhook_secret()
        if not delivery.valid_webhook_secret(secret):
            raise Unprocessable(
                "delivery.webhook_secret: must be whsec_ followed by base64",
                details=[{"field": "delivery.webhook_secret", "message": "not base64"}],
            )
        delivery_body["webhook_secret"] = secret
    policy.name = body.name
    policy.kind = body.kind
    policy.position = body.position
    policy.conditions = body.conditions.model_dump(mode="json")
    policy.delay_minutes = (
        body.delay_minutes if body.delay_minutes is not None else DEFAULT_DELAY_MINUTES[body.kind]
    )
    policy.cooldown_days = body.cooldown_days
    policy.sample_rate = body.sample_rate
    policy.expires_after_hours = body.expires_after_hours
    policy.question = body.question or service.DEFAULT_QUESTIONS[body.kind]
    policy.delivery = delivery_body


@router.get("/survey-policies", response_model=Page[SurveyPolicyRead], tags=["survey-policies"])
async def list_policies(
    session: Session, _: Reader, limit: Limit = 50, cursor: Cursor = None
) -> Page[SurveyPolicyRead]:
    after = None
    if cursor:
        position, policy_id = decode_cursor(cursor, 2)
        if not isinstance(position, int):
            raise Unprocessable("cursor: not a cursor returned by this API")
        after = (position, str(policy_id))
    policies = await repository.list_policies_page(session, limit=limit + 1, after=after)
    next_cursor = None
    if len(policies) > limit:
        last = policies[limit - 1]
        next_cursor = encode_cursor(last.position, last.id)
    return Page(items=[_policy_read(p) for p in policies[:limit]], next_cursor=next_cursor)


@router.post(
    "/survey-policies",
    response_model=SurveyPolicyRead,
    status_code=201,
    tags=["survey-policies"],
)
async def create_policy(
    body: SurveyPolicyWrite, session: Session, runtime: Runtime, _: Admin
) -> SurveyPolicyRead:
    now = runtime.clock.now()
    policy = SurveyPolicy(id=str(uuid.uuid4()), created_at=now, updated_at=now)
    _apply(policy, body)
    session.add(policy)
    await session.flush()
    return _policy_read(policy, reveal_secret=True)


@router.get(
    "/survey-policies/{policy_id}", response_model=SurveyPolicyRead, tags=["survey-policies"]
)
async def get_policy(policy_id: PathId, session: Session, _: Reader) -> SurveyPolicyRead:
    policy = await repository.get_policy(session, policy_id)
    if policy is None:
        raise NotFound(f"survey policy {policy_id} not found")
    return _policy_read(policy)


@router.put(
    "/survey-policies/{policy_id}", response_model=SurveyPolicyRead, tags=["survey-policies"]
)
async def replace_policy(
    policy_id: PathId, body: SurveyPolicyWrite, session: Session, runtime: Runtime, _: Admin
) -> SurveyPolicyRead:
    policy = await repository.get_policy(session, policy_id)
    if policy is None:
        raise NotFound(f"survey policy {policy_id} not found")
    _apply(policy, body)
    policy.updated_at = runtime.clock.now()
    await session.flush()
    return _policy_read(policy, reveal_secret=True)


@router.delete("/survey-policies/{policy_id}", status_code=204, tags=["survey-policies"])
async def delete_policy(policy_id: PathId, session: Session, _: Admin) -> Response:
    """Surveys already scheduled by the policy are still sent (they carry what they need)."""
    policy = await repository.get_policy(session, policy_id)
    if policy is None:
        raise NotFound(f"survey policy {policy_id} not found")
    await session.delete(policy)
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
