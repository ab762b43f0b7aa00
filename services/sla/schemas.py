"""sla's request and response models."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from shared.conditions import Conditions
from shared.delivery import DeliveryRead
from shared.events import Metric, Priority, Status
from shared.types import StrictInput, WebhookUrl


class TimerRead(BaseModel):
    metric: Metric
    status: str
    started_at: datetime
    due_at: datetime | None
    met_at: datetime | None
    breached_at: datetime | None
    paused_seconds: float
    remaining_seconds: float | None


class TicketSlaRead(BaseModel):
    ticket_id: str
    policy_id: str | None
    timers: list[TimerRead]


class CalendarWrite(StrictInput):
    """``POST`` / ``PUT`` body of ``/v1/calendars``; intervals and zone are checked in service."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    timezone: str = Field(min_length=1, max_length=64)
    hours: dict[str, list[list[str]]]
    holidays: list[str] = Field(default_factory=list, max_length=1000)


class CalendarRead(CalendarWrite):
    id: str
    created_at: datetime
    updated_at: datetime


class Target(StrictInput):
    model_config = ConfigDict(extra="forbid")

    priority: Priority
    metric: Metric
    minutes: int = Field(gt=0, le=366 * 24 * 60)
    calendar_id: str | None = Field(default=None, min_length=1, max_length=64)


Recipient = Annotated[str, Field(min_length=1, max_length=320)]


class EscalationActions(StrictInput):
    model_config = ConfigDict(extra="forbid")

    # Who to tell: e-mail addresses (mailed when SMTP is set) or names; all in the webhook.
    notify: Annotated[list[Recipient], Field(max_length=50)] | Recipient | None = None
    set_group: str | None = Field(default=None, max_length=100)
    set_priority: Priority | None = None


class Escalation(StrictInput):
    model_config = ConfigDict(extra="forbid")

    metric: Metric
    level: int = Field(ge=1, le=100)
    when: Literal["warning", "breach"]
    actions: EscalationActions


DEFAULT_PAUSE_STATUSES: tuple[Status, ...] = ("pending", "on_hold")


class PauseStatuses(StrictInput):
    """Per-metric pause statuses; a metric left out keeps its default (first response: none,
    next response and resolution: pending and on-hold)."""

    first_response: list[Status] | None = None
    next_response: list[Status] | None = None
    resolution: list[Status] | None = None


class SlaPolicyWrite(StrictInput):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    position: int = Field(default=0, ge=0, le=1_000_000)
    conditions: Conditions = Field(default_factory=Conditions)
    targets: list[Target] = Field(min_length=1, max_length=100)
    warn_at: list[Annotated[float, Field(gt=0, lt=1)]] = Field(
        default_factory=lambda: [0.75], max_length=10
    )
    # A list pauses next response and resolution (never first response); the per-metric form
    # ``{"next_response": [...], "resolution": [...]}`` gives each metric its own.
    pause_statuses: list[Status] | PauseStatuses = Field(
        default_factory=lambda: list(DEFAULT_PAUSE_STATUSES)
    )
    escalations: list[Escalation] = Field(default_factory=list, max_length=100)

    @model_validator(mode="after")
    def _unique(self) -> SlaPolicyWrite:
        seen: set[tuple[str, str]] = set()
        for target in self.targets:
            key = (target.priority, target.metric)
            if key in seen:
                raise ValueError(f"targets: {target.priority} {target.metric} is given twice")
            seen.add(key)
        pausing = self.pause_statuses
        groups = (
            [pausing]
            if isinstance(pausing, list)
            else [v for v in pausing.model_dump().values() if v is not None]
        )
        if any("solved" in g or "closed" in g for g in groups):
            raise ValueError("pause_statuses: solved and closed stop timers; they cannot pause")
        levels = [(e.metric, e.level) for e in self.escalations]
        if len(levels) != len(set(levels)):
            raise ValueError("escalations: a metric has the same level twice")
        return self


class SlaPolicyRead(SlaPolicyWrite):
    id: str
    created_at: datetime
    updated_at: datetime


class BreachRead(BaseModel):
    ticket_id: str
    timer_id: str
    metric: Metric
    priority: str | None
    policy_id: str | None
    started_at: datetime
    due_at: datetime | None
    breached_at: datetime
    met_at: datetime | None


class AtRiskRead(BaseModel):
    ticket_id: str
    timer_id: str
    metric: Metric
    priority: str | None
    policy_id: str | None
    due_at: datetime
    remaining_seconds: float


SLA_EVENT_TYPES = (
    "sla.started",
    "sla.paused",
    "sla.resumed",
    "sla.met",
    "sla.warning",
    "sla.breached",
    "sla.escalated",
    "goal.at_risk",
    "goal.missed",
    "goal.met",
    "goal.recovered",
)


class WebhookSubscriptionCreate(StrictInput):
    model_config = ConfigDict(extra="forbid")

    url: WebhookUrl
    event_types: list[str] = Field(min_length=1, max_length=20)
    secret: str = Field(min_length=10, max_length=200)

    @field_validator("event_types")
    @classmethod
    def _known(cls, value: list[str]) -> list[str]:
        for event_type in value:
            if event_type not in (*SLA_EVENT_TYPES, "sla.*", "goal.*", "*"):
                raise ValueError(
                    f"unknown event type {event_type!r}; use sla.*, goal.* or one of "
                    f"{SLA_EVENT_TYPES}"
                )
        return value


class WebhookSubscriptionRead(BaseModel):
    id: str
    url: str
    event_types: list[str]
    created_at: datetime


class WebhookDeliveryRead(DeliveryRead):
    """A delivery to a subscription: ``id`` is also its ``webhook-id``; ``attempt_log`` has one
    entry per attempt (``attempt``, ``at``, ``status_code``, ``error``, ``next_attempt_at``)."""
