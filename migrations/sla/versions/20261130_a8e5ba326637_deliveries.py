"""deliveries: one table for outbound webhooks and escalation e-mails (shared.delivery)

Replaces ``webhook_deliveries``; its rows are copied (the old row id becomes the
``webhook-id``), so nothing pending is lost.

Revision ID: a8e5ba326637
Revises: 2c314cfc18c8
Create Date: 2026-11-30 19:04:11.743995+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import shared.db

revision: str = "a8e5ba326637"
down_revision: str | None = "2c314cfc18c8"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
COPIED = (
    "id",
    "subscription_id",
    "event_id",
    "event_type",
    "ticket_id",
    "payload",
    "status",
    "attempts",
    "next_attempt_at",
    "last_attempt_at",
    "last_status_code",
    "last_error",
    "created_at",
    "delivered_at",
)


def upgrade() -> None:
    deliveries = op.create_table(
        "deliveries",
        sa.Column("subscription_id", sa.String(length=64), nullable=True),
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("target", sa.String(length=2000), nullable=False),
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("event_type", sa.String(length=64), nullable=False),
        sa.Column("ticket_id", sa.String(length=255), nullable=True),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", shared.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_attempt_at", shared.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_status_code", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.String(length=1000), nullable=True),
        sa.Column("attempt_log", JSON, nullable=False),
        sa.Column("created_at", shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", shared.db.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deliveries")),
        schema="sla",
    )
    op.create_index(
        "ix_deliveries_status_next_attempt_at",
        "deliveries",
        ["status", "next_attempt_at"],
        unique=False,
        schema="sla",
    )
    op.create_index(
        op.f("ix_sla_deliveries_subscription_id"),
        "deliveries",
        ["subscription_id"],
        unique=False,
        schema="sla",
    )
    bind = op.get_bind()
    # A plain SELECT is not schema-translated: SQLite keeps the service in a file of its own.
    schema = None if bind.dialect.name == "sqlite" else "sla"
    old = sa.table(
        "webhook_deliveries",
        *(
            sa.column(name, shared.db.UTCDateTime()) if name.endswith("_at") else sa.column(name)
            for name in COPIED
        ),
        schema=schema,
    )
    subscriptions = sa.table(
        "webhook_subscriptions", sa.column("id"), sa.column("url"), schema=schema
    )
    statement = sa.select(old, subscriptions.c.url).select_from(
        old.outerjoin(subscriptions, subscriptions.c.id == old.c.subscription_id)
    )
    rows = [
        {
            **{name: row._mapping[name] for name in COPIED},
            "channel": "webhook",
            "target": row.url or "",
            "attempt_log": [],
        }
        for row in bind.execute(statement)
    ]
    for start in range(0, len(rows), 1000):
        op.bulk_insert(deliveries, rows[start : start + 1000])
    op.drop_index(
        op.f("ix_sla_webhook_deliveries_subscription_id"),
        table_name="webhook_deliveries",
        schema="sla",
    )
    op.drop_index(
        op.f("ix_webhook_deliveries_next_attempt_at"),
        table_name="webhook_deliveries",
        schema="sla",
    )
    op.drop_table("webhook_deliveries", schema="sla")


def downgrade() -> None:
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("subscription_id", sa.String(length=64), nullable=False),
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("event_type", sa.String(length=64), nullable=False),
        sa.Column("ticket_id", sa.String(length=255), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", shared.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_attempt_at", shared.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_status_code", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.String(length=1000), nullable=True),
        sa.Column("created_at", shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", shared.db.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_deliveries")),
        sa.UniqueConstraint(
            "subscription_id",
            "event_id",
            name=op.f("uq_webhook_deliveries_subscription_id_event_id"),
        ),
        schema="sla",
    )
    op.create_index(
        op.f("ix_webhook_deliveries_next_attempt_at"),
        "webhook_deliveries",
        ["next_attempt_at"],
        unique=False,
        schema="sla",
    )
    op.create_index(
        op.f("ix_sla_webhook_deliveries_subscription_id"),
        "webhook_deliveries",
        ["subscription_id"],
        unique=False,
        schema="sla",
    )
    op.drop_index(op.f("ix_sla_deliveries_subscription_id"), table_name="deliveries", schema="sla")
    op.drop_index("ix_deliveries_status_next_attempt_at", table_name="deliveries", schema="sla")
    op.drop_table("deliveries", schema="sla")
