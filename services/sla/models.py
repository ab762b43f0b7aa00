"""sla's tables, in the ``sla`` schema."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.db import JSONType, UTCDateTime, make_metadata
from shared.delivery import DeliveryMixin
from shared.outbox import inbox_table, outbox_table

metadata = make_metadata("sla")
outbox = outbox_table(metadata)
inbox = inbox_table(metadata)


class Base(DeclarativeBase):
    metadata = metadata
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSONType}


class TrackedTicket(Base):
    """sla's own view of a ticket, built from router's events (newest ``version`` wins)."""

    __tablename__ = "tickets"

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    status: Mapped[str] = mapped_column(String(16))
    priority: Mapped[str] = mapped_column(String(16))
    channel: Mapped[str] = mapped_column(String(16))
    group: Mapped[str | None] = mapped_column(String(100))
    assignee_id: Mapped[str | None] = mapped_column(String(100))
    document: Mapped[dict[str, Any]] = mapped_column(JSONType)
    policy_id: Mapped[str | None] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime]
    solved_at: Mapped[datetime | None]
    # For reports: public agent replies, replies before the first solve, reopens, escalations.
    agent_replies: Mapped[int] = mapped_column(Integer, default=0)
    replies_before_solve: Mapped[int | None] = mapped_column(Integer)
    reopens: Mapped[int] = mapped_column(Integer, default=0)
    escalations: Mapped[int] = mapped_column(Integer, default=0)


class CalendarRow(Base):
    """A business-hours calendar: IANA zone, intervals per weekday, holidays."""

    __tablename__ = "calendars"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    timezone: Mapped[str] = mapped_column(String(64))
    hours: Mapped[dict[str, Any]] = mapped_column(JSONType)
    holidays: Mapped[list[str]] = mapped_column(JSONType, default=list)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class SlaPolicy(Base):
    """Targets per priority and metric for the tickets its conditions match (first by position)."""

    __tablename__ = "sla_policies"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    position: Mapped[int] = mapped_column(Integer, index=True)
    conditions: Mapped[dict[str, Any]] = mapped_column(JSONType)
    targets: Mapped[list[dict[str, Any]]] = mapped_column(JSONType)
    warn_at: Mapped[list[float]] = mapped_column(JSONType)
    # A list, or per metric {"next_response": [...], "resolution": [...]}.
    pause_statuses: Mapped[list[str] | dict[str, list[str]]] = mapped_column(JSONType)
    escalations: Mapped[list[dict[str, Any]]] = mapped_column(JSONType)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class Timer(Base):
    """One SLA clock of one ticket: a metric, and for next response, which customer turn."""

    __tablename__ = "timers"
    __table_args__ = (UniqueConstraint("ticket_id", "metric", "cycle"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    ticket_id: Mapped[str] = mapped_column(String(255), index=True)
    metric: Mapped[str] = mapped_column(String(32))
    cycle: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(16))
    policy_id: Mapped[str | None] = mapped_column(String(64))
    calendar_id: Mapped[str | None] = mapped_column(String(64))
    target_minutes: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime]
    due_at: Mapped[datetime | None]
    met_at: Mapped[datetime | None]
    breached_at: Mapped[datetime | None]
    paused_at: Mapped[datetime | None]
    paused_seconds: Mapped[float] = mapped_column(default=0.0)
    # Business seconds used before the current running segment, which began at segment_started_at.
    consumed_seconds: Mapped[float] = mapped_column(default=0.0)
    segment_started_at: Mapped[datetime | None]
    # Snapshots of the policy at start / last recompute, so a later policy edit or delete is
    # applied explicitly (recompute) and never half-way.
    warn_at: Mapped[list[float]] = mapped_column(JSONType, default=list)
    escalations: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    priority: Mapped[str | None] = mapped_column(String(16))
    # When the scheduler must look at this timer next (a warning or the breach); NULL = never.
    next_fire_at: Mapped[datetime | None]
    fired: Mapped[list[str]] = mapped_column(JSONType, default=list)


Index("ix_timers_next_fire_at", Timer.next_fire_at)


class WebhookSubscription(Base):
    """An outbound endpoint receiving sla events, signed per Standard Webhooks."""

    __tablename__ = "webhook_subscriptions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    url: Mapped[str] = mapped_column(String(2000))
    event_types: Mapped[list[str]] = mapped_column(JSONType)
    secret: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime]


class Delivery(DeliveryMixin, Base):
    """One outbound message (an event to a subscription, an escalation e-mail) and its log."""

    __tablename__ = "deliveries"

    # The webhook subscription; NULL for an escalation e-mail.
    subscription_id: Mapped[str | None] = mapped_column(String(64), index=True)


# Service goals keep their tables in this schema too (registered on ``metadata`` by import).
from services.sla.goals import models as _goal_models  # noqa: E402,F401
