"""the per-ticket goal data as JSON text: ticket samples, timeline events and document

Revision ID: 9c4e2a7b1f30
Revises: 7b3e91c4d2f6
Create Date: 2026-12-01 18:50:00.000000+00:00

``ticket_samples.samples`` and ``ticket_timelines.events`` / ``document`` are written for every
ticket of every consumer batch and only ever read whole (decoded by sla, or streamed out as text
by a what-if replay): nothing queries inside them. As ``jsonb``, PostgreSQL parsed each into its
binary form on every write (about 14 µs per ticket for 20 goals' samples); as ``json`` it only
checks the text and keeps it. SQLite keeps JSON as text already: nothing changes there.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "9c4e2a7b1f30"
down_revision: str | None = "7b3e91c4d2f6"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = (
    ("ticket_samples", "samples"),
    ("ticket_timelines", "events"),
    ("ticket_timelines", "document"),
)


def _retype(to: sa.types.TypeEngine[object], was: sa.types.TypeEngine[object], cast: str) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, column in COLUMNS:
        op.alter_column(
            table,
            column,
            type_=to,
            existing_type=was,
            existing_nullable=False,
            postgresql_using=f"{column}::{cast}",
            schema="sla",
        )


def upgrade() -> None:
    _retype(sa.JSON(), postgresql.JSONB(), "json")


def downgrade() -> None:
    _retype(postgresql.JSONB(), sa.JSON(), "jsonb")
