"""Delivery rows: the table's columns, new rows, their bodies, how the APIs show them."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel
from sqlalchemy import Index, Integer, String, Text
from sqlalchemy.orm import Mapped, declared_attr, mapped_column

from shared.db import JSONType, UTCDateTime

Channel = Literal["webhook", "email"]


class DeliveryMixin:
    """Columns of a service's delivery table; the service adds who the delivery belongs to."""

    # Also the ``webhook-id`` (and the e-mail's Message-ID): the same on every attempt.
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    channel: Mapped[str] = mapped_column(String(16))
    # The URL of a webhook or the address of an e-mail.
    target: Mapped[str] = mapped_column(String(2000))
    event_id: Mapped[str] = mapped_column(String(64))
    event_type: Mapped[str] = mapped_column(String(64))
    ticket_id: Mapped[str | None] = mapped_column(String(255))
    # The exact body sent (webhook), or {"subject", "text"} as JSON (e-mail).
    payload: Mapped[str] = mapped_column(Text)
    # pending -> delivered | failed (gave up)
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(String(1000))
    # One entry per attempt: {attempt, at, status_code, error, next_attempt_at}.
    attempt_log: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    @declared_attr.directive
    def __table_args__(cls) -> tuple[Any, ...]:
        name = cls.__tablename__  # type: ignore[attr-defined]
        return (Index(f"ix_{name}_status_next_attempt_at", "status", "next_attempt_at"),)


def new_delivery(
    model: type[Any],
    *,
    channel: Channel,
    target: str,
    payload: str,
    event_id: str,
    event_type: str,
    ticket_id: str | None,
    now: datetime,
    **owner: Any,
) -> Any:
    """A pending delivery row, due now; add it to the session of the causing state change."""
    return model(
        id=f"msg_{uuid.uuid4().hex}",
        channel=channel,
        target=target,
        payload=payload,
        event_id=event_id,
        event_type=event_type,
        ticket_id=ticket_id,
        status="pending",
        attempts=0,
        next_attempt_at=now,
        attempt_log=[],
        created_at=now,
        **owner,
    )


def webhook_body(event_type: str, data: dict[str, Any], now: datetime) -> str:
    """The JSON body of a webhook: ``{"type", "timestamp", "data"}`` (Standard Webhooks)."""
    body = {"type": event_type, "timestamp": now.isoformat(), "data": data}
    return json.dumps(body, separators=(",", ":"))


def email_body(subject: str, text: str) -> str:
    return json.dumps({"subject": subject[:200], "text": text})


class DeliveryRead(BaseModel):
    """One delivery and the log of its attempts, as the APIs show it."""

    id: str
    webhook_id: str
    channel: str
    target: str
    event_id: str
    event_type: str
    ticket_id: str | None
    status: str
    attempts: int
    created_at: datetime
    next_attempt_at: datetime | None
    last_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    delivered_at: datetime | None
    attempt_log: list[dict[str, Any]]


def delivery_read(row: Any) -> dict[str, Any]:
    """A delivery row as the fields of ``DeliveryRead``."""
    fields = {
        name: getattr(row, name) for name in DeliveryRead.model_fields if name != "webhook_id"
    }
    return {**fields, "webhook_id": row.id, "attempt_log": list(row.attempt_log or [])}
