"""sla's request and response models."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

from shared.events import Metric


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
