"""survey's tables, in the ``survey`` schema."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.db import JSONType, UTCDateTime, make_metadata
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


Index("ix_surveys_status_send_at", Survey.status, Survey.send_at)
