"""goal revision: a token changed with every goal write, for the per-process goal cache

Revision ID: 5e0c4b1d9a27
Revises: a8e5ba326637
Create Date: 2026-12-01 03:20:00.000000+00:00
"""

import uuid
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "5e0c4b1d9a27"
down_revision: str | None = "a8e5ba326637"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    table = op.create_table(
        "goal_revision",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_goal_revision")),
        schema="sla",
    )
    # Random, so that two databases never share a token (a process may serve several in tests).
    op.bulk_insert(table, [{"id": 1, "token": uuid.uuid4().hex}])


def downgrade() -> None:
    op.drop_table("goal_revision", schema="sla")
