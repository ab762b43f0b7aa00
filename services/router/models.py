"""router's tables, in the ``router`` schema."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.db import JSONType, UTCDateTime, make_metadata
from shared.outbox import inbox_table, outbox_table

metadata = make_metadata("router")
outbox = outbox_table(metadata)
inbox = inbox_table(metadata)

_ID = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    metadata = metadata
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSONType}


class Ticket(Base):
    __tablename__ = "tickets"

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    source: Mapped[str] = mapped_column(String(64))
    external_id: Mapped[str] = mapped_column(String(200))
    subject: Mapped[str] = mapped_column(String(1000))
    description: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), index=True)
    priority: Mapped[str] = mapped_column(String(16), index=True)
    channel: Mapped[str] = mapped_column(String(16))
    requester_id: Mapped[str] = mapped_column(String(255), index=True)
    requester_email: Mapped[str | None] = mapped_column(String(320))
    requester_name: Mapped[str | None] = mapped_column(String(255))
    requester_tier: Mapped[str] = mapped_column(String(16), default="standard")
    tags: Mapped[list[str]] = mapped_column(JSONType, default=list)
    group: Mapped[str | None] = mapped_column(String(100), index=True)
    assignee_id: Mapped[str | None] = mapped_column(String(100), index=True)
    custom_fields: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    solved_at: Mapped[datetime | None]
    # Newest provider timestamp applied: an older update never overwrites a newer state.
    source_updated_at: Mapped[datetime | None]
    # The vendor's own status and priority, as sent, whatever they were mapped to.
    source_status: Mapped[str | None] = mapped_column(String(255))
    source_priority: Mapped[str | None] = mapped_column(String(255))
    # A person assigned this ticket by hand: the router never undoes that.
    manual_assignment: Mapped[bool] = mapped_column(default=False)
    # Skills routing rules require: the queue honours them when capacity frees.
    required_skills: Mapped[list[str]] = mapped_column(JSONType, default=list)
    version: Mapped[int] = mapped_column(Integer, default=1)


Index("ix_tickets_created_at_id", Ticket.created_at, Ticket.id)


class AgentLoad(Base):
    """An agent's load on a channel as last folded: how many of their tickets are active
    (``new``, ``open`` or ``on_hold``, ``repository.ACTIVE_STATUSES``). The load now is this
    plus the ``AgentLoadChange`` rows not yet folded in (``repository.agent_loads``)."""

    __tablename__ = "agent_loads"

    agent_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    channel: Mapped[str] = mapped_column(String(16), primary_key=True)
    active: Mapped[int] = mapped_column(Integer)


class AgentLoadChange(Base):
    """One change of an agent's load (+1, -1), appended by database triggers on ``tickets``
    (migration ``7d3a9f2c5e18``, PostgreSQL and SQLite alike) on every write that moves a ticket
    in or out of an agent's active ones, whatever wrote it. Appending never waits on another
    transaction, where updating a shared count would (two transactions changing tickets of the
    same agents in opposite orders deadlocked that way). router folds them into ``AgentLoad``
    in the background (``repository.fold_agent_loads``), so a load is read from a few rows
    however many tickets are open. SQLite drops a table's triggers when a batch migration
    copies the table: a migration that does so to ``tickets`` must create them again
    (``tests/integration/test_agent_loads.py`` compares the loads with a count, on a database
    migrated to head)."""

    __tablename__ = "agent_load_changes"

    id: Mapped[int] = mapped_column(_ID, primary_key=True, autoincrement=True)
    agent_id: Mapped[str] = mapped_column(String(100), index=True)
    channel: Mapped[str] = mapped_column(String(16))
    delta: Mapped[int] = mapped_column(Integer)


class TicketMessage(Base):
    __tablename__ = "ticket_messages"

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    ticket_id: Mapped[str] = mapped_column(ForeignKey(Ticket.id, ondelete="CASCADE"), index=True)
    author: Mapped[str] = mapped_column(String(16))
    author_id: Mapped[str | None] = mapped_column(String(255))
    public: Mapped[bool]
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]


class RoutingDecision(Base):
    __tablename__ = "routing_decisions"

    id: Mapped[int] = mapped_column(_ID, primary_key=True, autoincrement=True)
    ticket_id: Mapped[str] = mapped_column(ForeignKey(Ticket.id, ondelete="CASCADE"), index=True)
    at: Mapped[datetime]
    kind: Mapped[str] = mapped_column(String(32))
    changes: Mapped[dict[str, Any]] = mapped_column(JSONType)
    reason: Mapped[str] = mapped_column(String(255))


class Agent(Base):
    __tablename__ = "agents"

    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    email: Mapped[str | None] = mapped_column(String(320))
    groups: Mapped[list[str]] = mapped_column(JSONType, default=list)
    skills: Mapped[list[str]] = mapped_column(JSONType, default=list)
    capacity: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    status: Mapped[str] = mapped_column(String(16), default="offline")
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    last_assigned_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


# --- webhook intake ---------------------------------------------------------------------------


class WebhookDelivery(Base):
    """One accepted webhook delivery, stored once: the dedupe key and the raw payload for audit."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (UniqueConstraint("provider", "delivery_key"),)

    id: Mapped[int] = mapped_column(_ID, primary_key=True, autoincrement=True)
    provider: Mapped[str] = mapped_column(String(32))
    # The provider's delivery id, or ``sha256:<hex>`` of the body when it gives none.
    delivery_key: Mapped[str] = mapped_column(String(255))
    ticket_id: Mapped[str] = mapped_column(String(255), index=True)
    ticket_ids: Mapped[list[str]] = mapped_column(JSONType, default=list)
    event_types: Mapped[list[str]] = mapped_column(JSONType, default=list)
    body: Mapped[str] = mapped_column(Text)
    received_at: Mapped[datetime]


class IdempotencyKey(Base):
    """``Idempotency-Key`` of ``POST /v1/tickets``: the request's hash and the first response."""

    __tablename__ = "idempotency_keys"

    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int | None] = mapped_column(Integer)
    response: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(index=True)


# --- routing rules ----------------------------------------------------------------------------


class RoutingRule(Base):
    __tablename__ = "routing_rules"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    position: Mapped[int] = mapped_column(Integer, default=0)
    enabled: Mapped[bool] = mapped_column(default=True)
    conditions: Mapped[dict[str, Any]] = mapped_column(JSONType)
    actions: Mapped[dict[str, Any]] = mapped_column(JSONType)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


Index("ix_routing_rules_position_id", RoutingRule.position, RoutingRule.id)


class ProviderMapping(Base):
    """An admin's per-vendor translation of raw status and priority values to canonical ones."""

    __tablename__ = "provider_mappings"

    provider: Mapped[str] = mapped_column(String(32), primary_key=True)
    status: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    priority: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    updated_at: Mapped[datetime]
