"""survey's request and response models."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

from shared.events import SurveyKind


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
    score: int | None
    comment: str | None
    token_url: str | None = None
