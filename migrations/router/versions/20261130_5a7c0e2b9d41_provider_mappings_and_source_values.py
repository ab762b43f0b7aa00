"""provider mappings and the vendor's raw status / priority on tickets

Revision ID: 5a7c0e2b9d41
Revises: f91a779689e8
Create Date: 2026-11-30 19:30:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import shared.db

revision: str = "5a7c0e2b9d41"
down_revision: str | None = "f91a779689e8"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _schema() -> str | None:
    # SQLite keeps each service in its own file: ALTER TABLE must not name the schema there.
    return None if op.get_bind().dialect.name == "sqlite" else "router"


def upgrade() -> None:
    op.create_table(
        "provider_mappings",
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column(
            "status",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "priority",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("updated_at", shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("provider", name=op.f("pk_provider_mappings")),
        schema=_schema(),
    )
    op.add_column(
        "tickets",
        sa.Column("source_status", sa.String(length=255), nullable=True),
        schema=_schema(),
    )
    op.add_column(
        "tickets",
        sa.Column("source_priority", sa.String(length=255), nullable=True),
        schema=_schema(),
    )


def downgrade() -> None:
    op.drop_column("tickets", "source_priority", schema=_schema())
    op.drop_column("tickets", "source_status", schema=_schema())
    op.drop_table("provider_mappings", schema=_schema())
