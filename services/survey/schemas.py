"""survey's request and response models."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.conditions import Conditions
from shared.delivery import DeliveryRead
from shared.events import SurveyKind
from shared.types import StrictInput, WebhookUrl

MAX_COMMENT_LENGTH = 5000
# Defaults when a policy does not say: CES right away (the effort is fresh), others shortly after.
DEFAULT_DELAY_MINUTES: dict[str, int] = {"csat": 60, "nps": 60, "ces": 0}


class Delivery(StrictInput):
    """How the survey link reaches the requester. Neither set: only ``GET /v1/surveys`` shows it."""

    model_config = ConfigDict(extra="forbid")

    webhook_url: WebhookUrl | None = None
    # Standard Webhooks secret (``whsec_`` + base64); generated when a webhook_url comes without.
    webhook_secret: str | None = Field(default=None, max_length=200)
    # Send the link to the requester's email address through SMTP (TICKETFLOW_SMTP_*).
    email: bool = False


class SurveyPolicyWrite(StrictInput):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    kind: SurveyKind
    position: int = Field(default=0, ge=0, le=1_000_000)
    conditions: Conditions = Field(default_factory=Conditions)
    delay_minutes: int | None = Field(default=None, ge=0, le=60 * 24 * 30)
    cooldown_days: int = Field(default=0, ge=0, le=3650)
    sample_rate: float = Field(default=1.0, ge=0.0, le=1.0)
    expires_after_hours: int = Field(default=7 * 24, ge=1, le=24 * 365)
    question: str | None = Field(default=None, min_length=1, max_length=1000)
    delivery: Delivery = Field(default_factory=Delivery)


class SurveyPolicyRead(BaseModel):
    id: str
    name: str
    kind: SurveyKind
    position: int
    conditions: Conditions
    delay_minutes: int
    cooldown_days: int
    sample_rate: float
    expires_after_hours: int
    question: str
    delivery: Delivery
    created_at: datetime
    updated_at: datetime


class SurveyRead(BaseModel):
    id: str
    ticket_id: str
    policy_id: str
    kind: SurveyKind
    question: str
    status: str
    requester_id: str
    assignee_id: str | None
    group: str | None
    channel: str
    created_at: datetime
    send_at: datetime
    sent_at: datetime | None
    expires_at: datetime | None
    answered_at: datetime | None
    cancelled_at: datetime | None = None
    score: int | None
    comment: str | None
    delivery_status: str | None = None
    token_url: str | None = None
    # Each delivery of the link (webhook, e-mail) with the log of its attempts.
    deliveries: list[DeliveryRead] = Field(default_factory=list)


class SurveyAnswer(StrictInput):
    model_config = ConfigDict(extra="forbid")

    score: int = Field(strict=True)
    comment: str | None = Field(default=None, max_length=MAX_COMMENT_LENGTH)
    # Optional: lets a client assert which scale it answered on (a mismatch is a 422).
    kind: SurveyKind | None = None


class AnswerRead(BaseModel):
    survey_id: str
    status: Literal["answered"]
    score: int
    comment: str | None
    answered_at: datetime


class SatisfactionRow(BaseModel):
    group: str | None
    kind: SurveyKind
    sent: int
    answered: int
    response_rate: float | None
    average_score: float | None
    csat_percent: float | None = None
    nps: float | None = None
    ces_percent: float | None = None
    promoters: int | None = None
    passives: int | None = None
    detractors: int | None = None


class SatisfactionReport(BaseModel):
    from_: datetime | None = Field(default=None, serialization_alias="from")
    to: datetime | None
    kind: SurveyKind | None
    group_by: str | None
    items: list[SatisfactionRow]
