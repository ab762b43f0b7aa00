"""``/v1/goals``: SMART service goals, their attainment, a dashboard summary and what-if."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from services.sla.goals import attainment, repository, service, whatif
from services.sla.goals.models import Goal
from services.sla.goals.schemas import (
    AttainmentRead,
    GoalRead,
    GoalSaved,
    GoalSummary,
    GoalWrite,
    WhatIfRead,
    WhatIfRequest,
)
from services.sla.service import SlaContext
from shared.app import Runtime, Session
from shared.auth import Admin, Reader
from shared.errors import NotFound
from shared.pagination import Cursor, Limit, Page

router = APIRouter(prefix="/v1", tags=["goals"])

GoalId = Annotated[str, Path(min_length=1, max_length=64)]


def goal_read(row: Goal) -> GoalRead:
    return GoalRead(
        id=row.id,
        name=row.name,
        description=row.description,
        metric=row.metric,
        scope=row.scope,
        threshold_seconds=row.threshold_seconds,
        calendar_id=row.calendar_id,
        sla_metric=row.sla_metric,
        target=row.target,
        period={"kind": row.period_kind, "days": row.period_days},
        timezone=row.timezone,
        demo=row.demo,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


async def _saved(ctx: SlaContext, row: Goal) -> GoalSaved:
    goal = service.GoalDef.of(row)
    count = service.ASSESSED_PERIODS[goal.period_kind]
    assessed = await attainment.assessment(ctx.session, goal, ctx.clock.now(), count)
    return GoalSaved(**goal_read(row).model_dump(), assessment=assessed)


@router.get("/goals", response_model=Page[GoalRead])
async def list_goals(
    session: Session, _: Reader, limit: Limit = 100, cursor: Cursor = None
) -> Page[GoalRead]:
    goals = await repository.page_goals(session, limit=limit, cursor=cursor)
    return goals.page(goal_read)


@router.post("/goals", response_model=GoalSaved, status_code=201)
async def create_goal(body: GoalWrite, session: Session, runtime: Runtime, _: Admin) -> GoalSaved:
    ctx = SlaContext.for_session(session, runtime)
    row = await service.create_goal(ctx, body)
    return await _saved(ctx, row)


@router.get("/goals/summary", response_model=GoalSummary)
async def goals_summary(session: Session, runtime: Runtime, _: Reader) -> GoalSummary:
    """Every goal with its current value, target and status: one call for a dashboard."""
    now = runtime.clock.now()
    items = await attainment.board(session, now)
    return GoalSummary.model_validate({"items": items, "at": now})


@router.post("/goals/what-if", response_model=WhatIfRead)
async def what_if(body: WhatIfRequest, runtime: Runtime, _: Reader) -> WhatIfRead:
    """Replays a goal or an SLA policy over the recorded history of ``[from, to)``; changes
    nothing, so it reads in a read-only unit of work of its own (on SQLite a long replay then
    never holds the write lock)."""
    if (body.goal is None) == (body.sla_policy is None):
        raise service.invalid("goal", "give exactly one of goal and sla_policy")
    whatif.check_range(body.from_, body.to)
    async with runtime.unit_of_work(SlaContext, read_only=True) as ctx:
        if body.goal is not None:
            try:
                await service.validate(ctx.session, body.goal)
            except service.Unprocessable as exc:
                for detail in exc.details:
                    detail["field"] = f"goal.{detail['field']}"
                raise
            result = await whatif.goal_what_if(
                ctx, service.GoalDef.of_body(body.goal), body.from_, body.to
            )
            return WhatIfRead.model_validate(
                {"kind": "goal", "from_": body.from_, "to": body.to, "goal": result}
            )
        assert body.sla_policy is not None
        replay = await whatif.policy_what_if(ctx, body.sla_policy, body.from_, body.to)
    return WhatIfRead.model_validate(
        {"kind": "sla_policy", "from_": body.from_, "to": body.to, "sla_policy": replay}
    )


async def _goal_or_404(session: Session, goal_id: str) -> Goal:
    row = await repository.get_goal(session, goal_id)
    if row is None:
        raise NotFound(f"goal {goal_id} not found")
    return row


@router.get("/goals/{goal_id}", response_model=GoalRead)
async def get_goal(goal_id: GoalId, session: Session, _: Reader) -> GoalRead:
    return goal_read(await _goal_or_404(session, goal_id))


@router.put("/goals/{goal_id}", response_model=GoalSaved)
async def update_goal(
    goal_id: GoalId, body: GoalWrite, session: Session, runtime: Runtime, _: Admin
) -> GoalSaved:
    ctx = SlaContext.for_session(session, runtime)
    row = await service.update_goal(ctx, goal_id, body)
    return await _saved(ctx, row)


@router.delete("/goals/{goal_id}", status_code=204)
async def delete_goal(goal_id: GoalId, session: Session, runtime: Runtime, _: Admin) -> Response:
    await service.delete_goal(SlaContext.for_session(session, runtime), goal_id)
    return Response(status_code=204)


@router.get("/goals/{goal_id}/attainment", response_model=AttainmentRead)
async def goal_attainment(
    goal_id: GoalId,
    session: Session,
    runtime: Runtime,
    _: Reader,
    at: Annotated[
        datetime | None, Query(description="an instant in the period (default now)")
    ] = None,
) -> AttainmentRead:
    row = await _goal_or_404(session, goal_id)
    when = at or runtime.clock.now()
    if when.tzinfo is None:
        raise service.invalid("at", "give an offset, e.g. 2026-11-30T12:00:00Z")
    result = await attainment.attainment(session, service.GoalDef.of(row), when)
    return AttainmentRead.model_validate(result.read())
