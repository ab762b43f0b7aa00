"""Request and response models of ``/v1/goals``."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from services.sla.schemas import SlaPolicyWrite
from shared.events import Channel, Metric, Priority
from shared.types import QueryTime, StrictInput

GoalMetric = Literal[
    "first_response_time",
    "next_response_time",
    "resolution_time",
    "sla_compliance",
    "csat",
    "nps",
    "ces",
    "first_contact_resolution",
    "reopen_rate",
]
GoalStatus = Literal["on_track", "at_risk", "missed", "met", "no_data"]


class GoalScope(StrictInput):
    model_config = ConfigDict(extra="forbid")

    channel: list[Channel] | None = Field(default=None, max_length=20)
    group: list[str] | None = Field(default=None, max_length=100)
    priority: list[Priority] | None = Field(default=None, max_length=10)


class GoalPeriod(StrictInput):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["week", "month", "quarter", "rolling_days"]
    days: int | None = Field(default=None, ge=1, le=366)


class GoalWrite(StrictInput):
    """Cross-field rules (threshold for time metrics, target range...) are checked in service,
    so each 422 names its field."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=2000)
    metric: GoalMetric
    scope: GoalScope = Field(default_factory=GoalScope)
    threshold_seconds: float | None = Field(default=None, gt=0, le=366 * 86400)
    calendar_id: str | None = Field(default=None, max_length=64)
    sla_metric: Metric | None = None
    target: float
    period: GoalPeriod
    timezone: str = Field(default="UTC", min_length=1, max_length=64)


class PeriodValue(BaseModel):
    start: datetime
    end: datetime
    value: float | None
    sample_size: int
    met: bool | None


class Assessment(BaseModel):
    periods: list[PeriodValue]
    periods_with_data: int
    periods_met: int


class GoalRead(GoalWrite):
    id: str
    demo: bool
    created_at: datetime
    updated_at: datetime


class GoalSaved(GoalRead):
    assessment: Assessment


class PeriodBounds(BaseModel):
    start: datetime
    end: datetime


class ProjectionRead(BaseModel):
    value: float | None
    low: float | None
    high: float | None


class TrendPoint(BaseModel):
    date: str
    value: float | None
    sample_size: int


class PreviousPeriod(BaseModel):
    start: datetime
    end: datetime
    value: float | None
    met: bool | None


class AttainmentRead(BaseModel):
    goal_id: str
    period: PeriodBounds
    value: float | None
    target: float
    sample_size: int
    met_count: int
    status: GoalStatus
    projection: ProjectionRead
    needed: float | None
    trend: list[TrendPoint]
    previous: list[PreviousPeriod]


class GoalSummaryItem(BaseModel):
    goal_id: str
    name: str
    metric: GoalMetric
    period: PeriodBounds
    value: float | None
    target: float
    sample_size: int
    status: GoalStatus
    projection: ProjectionRead
    needed: float | None


class GoalSummary(BaseModel):
    items: list[GoalSummaryItem]
    at: datetime


class WhatIfRequest(StrictInput):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    goal: GoalWrite | None = None
    sla_policy: SlaPolicyWrite | None = None
    from_: QueryTime = Field(alias="from")
    to: QueryTime


class ValuesReached(BaseModel):
    min: float | None
    median: float | None
    max: float | None


class GoalWhatIf(BaseModel):
    periods: list[PeriodValue]
    periods_with_data: int
    periods_met: int
    sample_size: int
    attainable_threshold_seconds: float | None
    values_reached: ValuesReached


class MetricReplay(BaseModel):
    metric: Metric
    timers: int
    met: int
    breaches: int
    open: int
    compliance: float | None
    median_seconds: float | None
    p90_seconds: float | None


class PolicyWhatIf(BaseModel):
    tickets: int
    tickets_matched: int
    metrics: list[MetricReplay]


class WhatIfRead(BaseModel):
    kind: Literal["goal", "sla_policy"]
    from_: datetime = Field(serialization_alias="from")
    to: datetime
    goal: GoalWhatIf | None = None
    sla_policy: PolicyWhatIf | None = None
