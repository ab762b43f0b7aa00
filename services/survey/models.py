"""survey's tables, in the ``survey`` schema."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Float, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.db import JSONType, UTCDateTime, make_metadata
from shared.delivery import DeliveryMixin
from shared.outbox import inbox_table, outbox_table

metadata = make_metadata("survey")
outbox = outbox_table(metadata)
inbox = inbox_table(metadata)


class Base(DeclarativeBase):
    metadata = metadata
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSONType}


class Survey(Base):
    __tablename__ = "surveys"
    # One survey per ticket per policy, however often ticket.solved arrives.
    __table_args__ = (UniqueConstraint("ticket_id", "policy_id"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    ticket_id: Mapped[str] = mapped_column(String(255), index=True)
    policy_id: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(8))
    question: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), index=True)
    requester_id: Mapped[str] = mapped_column(String(255), index=True)
    requester_email: Mapped[str | None] = mapped_column(String(320))
    # The ticket as it was solved: reports group by these.
    assignee_id: Mapped[str | None] = mapped_column(String(100))
    group: Mapped[str | None] = mapped_column(String(100))
    channel: Mapped[str] = mapped_column(String(16))
    priority: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime]
    send_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]
    expires_at: Mapped[datetime | None]
    answered_at: Mapped[datetime | None]
    cancelled_at: Mapped[datetime | None]
    token_hash: Mapped[str | None] = mapped_column(String(128), unique=True)
    score: Mapped[int | None] = mapped_column(Integer)
    comment: Mapped[str | None] = mapped_column(Text)
    # Added with survey policies: what the sender and the delivery need later.
    ticket_version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    subject: Mapped[str | None] = mapped_column(String(1000))
    requester_name: Mapped[str | None] = mapped_column(String(255))
    requester_tier: Mapped[str | None] = mapped_column(String(16))
    solved_at: Mapped[datetime | None]
    delivery: Mapped[dict[str, Any] | None]
    # pending | delivered | failed | none (no channel configured); the log is in ``deliveries``
    delivery_status: Mapped[str | None] = mapped_column(String(16))
    delivery_error: Mapped[str | None] = mapped_column(Text)


Index("ix_surveys_status_send_at", Survey.status, Survey.send_at)
Index("ix_surveys_status_expires_at", Survey.status, Survey.expires_at)
Index("ix_surveys_requester_id_created_at", Survey.requester_id, Survey.created_at)


class SurveyPolicy(Base):
    __tablename__ = "survey_policies"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(8))
    position: Mapped[int] = mapped_column(Integer, default=0)
    conditions: Mapped[dict[str, Any]]
    delay_minutes: Mapped[int] = mapped_column(Integer)
    cooldown_days: Mapped[int] = mapped_column(Integer)
    sample_rate: Mapped[float] = mapped_column(Float)
    expires_after_hours: Mapped[int] = mapped_column(Integer)
    question: Mapped[str] = mapped_column(Text)
    delivery: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class TokenSecret(Base):
    """The survey-link signing secret generated once when TICKETFLOW_SURVEY_TOKEN_SECRET is unset,
    so every instance derives the same links and a restart loses none."""

    __tablename__ = "token_secrets"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    secret: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime]


class SurveyDelivery(DeliveryMixin, Base):
    """One message carrying a sent survey's link (a webhook or an e-mail) and its log."""

    __tablename__ = "deliveries"

    survey_id: Mapped[str] = mapped_column(String(64), index=True)
