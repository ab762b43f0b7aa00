"""Tables of service goals, in the ``sla`` schema.

- ``goals``: the definitions, with the last status announced (for ``goal.*`` events).
- ``ticket_timelines``: each ticket's compact history (created, messages by author, status and
  priority changes), fed by router's events; what-if replays and backfills read it.
- ``survey_answers``: survey answers as ``survey.answered`` reported them.
- ``ticket_samples``: one row per ticket with its samples of every goal (its ``samples``
  JSON: per goal's ``sample_set``, a list of ``[key, local day, good, bad, value]``), so that a
  redelivered or corrected event replaces its sample instead of counting it twice. One row
  per ticket, written once per consumer batch, where a row per goal and sample cost the
  database more than sla's own handling of the event.
- ``goal_samples``: one row per goal and survey answer, for the same reason (an answer may
  come before its ticket, or for a ticket sla never saw).
- ``goal_buckets``: per goal and local day (in the goal's time zone) the running totals that
  attainment reads, so a read never scans tickets.
- ``goal_revision``: one row whose token changes with every write of a goal definition, so that
  each sla process can keep the goal list in memory and know, for the price of a subquery in a
  read it makes anyway, whether it is still current.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Date, Float, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from services.sla.models import Base
from shared.db import JSONType, json_dumps


class Goal(Base):
    __tablename__ = "goals"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(String(2000))
    metric: Mapped[str] = mapped_column(String(32))
    scope: Mapped[dict[str, Any]] = mapped_column(JSONType)
    threshold_seconds: Mapped[float | None]
    calendar_id: Mapped[str | None] = mapped_column(String(64))
    sla_metric: Mapped[str | None] = mapped_column(String(32))
    target: Mapped[float]
    period_kind: Mapped[str] = mapped_column(String(16))
    period_days: Mapped[int | None] = mapped_column(Integer)
    timezone: Mapped[str] = mapped_column(String(64))
    demo: Mapped[bool] = mapped_column(Boolean, default=False)
    # The key of the goal's samples in ``ticket_samples``: a new one whenever what the goal
    # measures changes, so the samples of the old definition are left behind (and ignored)
    # instead of being removed from every ticket's row.
    sample_set: Mapped[str] = mapped_column(String(64))
    # The status last announced with a goal.* event, and the start of the period it was for.
    last_status: Mapped[str | None] = mapped_column(String(16))
    last_period_start: Mapped[date | None] = mapped_column(Date)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class TicketTimeline(Base):
    """``events`` is a list of ``[seconds since created, code, value]``: ``a`` public agent reply,
    ``c`` customer message, ``s`` status change (value = new status), ``p`` priority change."""

    __tablename__ = "ticket_timelines"

    ticket_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(index=True)
    channel: Mapped[str] = mapped_column(String(16))
    group: Mapped[str | None] = mapped_column(String(100))
    priority: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    # JSON text, not jsonb (on PostgreSQL): written for every ticket of every batch, only ever
    # read whole (migration ``9c4e2a7b1f30``).
    document: Mapped[dict[str, Any]] = mapped_column(JSON)
    events: Mapped[list[Any]] = mapped_column(JSON)
    version: Mapped[int] = mapped_column(Integer, default=0)
    demo: Mapped[bool] = mapped_column(Boolean, default=False)


@dataclass(slots=True)
class Timeline:
    """A ``ticket_timelines`` row as goal bookkeeping reads and changes it on every event: a
    plain object, since an ORM instance costs more to build and to change than the work done
    with it. ``dirty`` says it differs from what is stored."""

    ticket_id: str
    created_at: datetime
    channel: str
    group: str | None
    priority: str
    status: str
    # What SLA policy conditions may look at (``DOCUMENT_FIELDS``): the JSON text as stored,
    # or, once an event changed it, that event's snapshot as a dict, which may hold more (cut
    # to those fields when written, ``document_text``: a batch's earlier events never are).
    document: str | dict[str, Any]
    events: list[Any]
    version: int
    demo: bool
    dirty: bool = False


# The ticket fields a timeline keeps for what-if replays of an SLA policy's conditions.
DOCUMENT_FIELDS = (
    "id",
    "subject",
    "status",
    "priority",
    "channel",
    "requester",
    "tags",
    "group",
    "assignee_id",
    "custom_fields",
)


def document_fields(document: dict[str, Any]) -> dict[str, Any]:
    """A snapshot's dump cut to ``DOCUMENT_FIELDS``."""
    return {name: document[name] for name in DOCUMENT_FIELDS if name in document}


def document_text(timeline: Timeline) -> str:
    """The timeline's document as the JSON text to store."""
    document = timeline.document
    return document if isinstance(document, str) else json_dumps(document_fields(document))


class SurveyAnswer(Base):
    __tablename__ = "survey_answers"

    survey_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    ticket_id: Mapped[str] = mapped_column(String(255), index=True)
    kind: Mapped[str] = mapped_column(String(8))
    score: Mapped[int] = mapped_column(Integer)
    answered_at: Mapped[datetime] = mapped_column(index=True)
    demo: Mapped[bool] = mapped_column(Boolean, default=False)


class TicketSamples(Base):
    """A ticket's samples: ``samples`` maps a goal's ``sample_set`` to the list of its
    ``[key, local day (ISO), good, bad, value]``; a goal with none may be absent or map to an
    empty list."""

    __tablename__ = "ticket_samples"

    ticket_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    samples: Mapped[dict[str, Any]] = mapped_column(JSON)  # JSON text, as the timeline's


class GoalSample(Base):
    """A survey answer's sample of one goal."""

    __tablename__ = "goal_samples"

    goal_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    ticket_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    day: Mapped[date] = mapped_column(Date)
    good: Mapped[int] = mapped_column(Integer)
    bad: Mapped[int] = mapped_column(Integer)
    value: Mapped[float]


Index("ix_goal_samples_ticket_id", GoalSample.ticket_id)


class GoalBucket(Base):
    """Totals of one goal's samples completed on one local day."""

    __tablename__ = "goal_buckets"

    goal_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    samples: Mapped[int] = mapped_column(Integer)
    good: Mapped[int] = mapped_column(Integer)
    bad: Mapped[int] = mapped_column(Integer)
    value_sum: Mapped[float] = mapped_column(Float)


class GoalRevision(Base):
    """The single row (``id`` 1) of the goal definitions' revision: a new random ``token`` on
    every create, update or delete of a goal, in the same transaction."""

    __tablename__ = "goal_revision"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token: Mapped[str] = mapped_column(String(32))
