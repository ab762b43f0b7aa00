"""the survey-link secret generated once when none is configured

Revision ID: b3e1f0a7c5d2
Revises: 4eeb6e2a0f21
Create Date: 2026-11-30 20:20:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import shared.db

revision: str = "b3e1f0a7c5d2"
down_revision: str | None = "4eeb6e2a0f21"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _schema() -> str | None:
    # SQLite keeps each service in its own file: DDL must not name the schema there.
    return None if op.get_bind().dialect.name == "sqlite" else "survey"


def upgrade() -> None:
    op.create_table(
        "token_secrets",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("secret", sa.String(length=128), nullable=False),
        sa.Column("created_at", shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_token_secrets")),
        schema=_schema(),
    )


def downgrade() -> None:
    op.drop_table("token_secrets", schema=_schema())
