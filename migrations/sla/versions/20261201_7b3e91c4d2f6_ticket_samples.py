"""ticket samples: a ticket's goal samples in one row (JSON), survey samples stay in rows

Revision ID: 7b3e91c4d2f6
Revises: 5e0c4b1d9a27
Create Date: 2026-12-01 13:30:00.000000+00:00

Each goal gets a ``sample_set`` (its id for the goals that exist), the key of its samples in
``ticket_samples.samples``. The ticket samples of ``goal_samples`` (every key but ``survey:*``)
move there, grouped by ticket: ``{sample_set: [[key, day, good, bad, value], ...]}``.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "7b3e91c4d2f6"
down_revision: str | None = "5e0c4b1d9a27"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_MOVE = {
    "postgresql": """
        INSERT INTO sla.ticket_samples (ticket_id, samples)
        SELECT ticket_id, jsonb_object_agg(goal_id, entries)
        FROM (
            SELECT ticket_id, goal_id, jsonb_agg(
                jsonb_build_array(key, to_char(day, 'YYYY-MM-DD'), good, bad, value)
                ORDER BY key) AS entries
            FROM sla.goal_samples WHERE key NOT LIKE 'survey:%'
            GROUP BY ticket_id, goal_id
        ) AS per_goal
        GROUP BY ticket_id
    """,
    "sqlite": """
        INSERT INTO ticket_samples (ticket_id, samples)
        SELECT ticket_id, json_group_object(goal_id, json(entries))
        FROM (
            SELECT ticket_id, goal_id,
                json_group_array(json_array(key, day, good, bad, value)) AS entries
            FROM goal_samples WHERE key NOT LIKE 'survey:%'
            GROUP BY ticket_id, goal_id
        ) AS per_goal
        GROUP BY ticket_id
    """,
}
_BACK = {
    "postgresql": """
        INSERT INTO sla.goal_samples (goal_id, ticket_id, key, day, good, bad, value)
        SELECT goal.id, t.ticket_id, e.entry->>0, CAST(e.entry->>1 AS date),
            CAST(e.entry->>2 AS integer), CAST(e.entry->>3 AS integer),
            CAST(e.entry->>4 AS float8)
        FROM sla.ticket_samples AS t
        CROSS JOIN LATERAL jsonb_each(t.samples) AS s(sample_set, entries)
        JOIN sla.goals AS goal ON goal.sample_set = s.sample_set
        CROSS JOIN LATERAL jsonb_array_elements(s.entries) AS e(entry)
    """,
    "sqlite": """
        INSERT INTO goal_samples (goal_id, ticket_id, key, day, good, bad, value)
        SELECT goal.id, t.ticket_id, json_extract(e.value, '$[0]'), json_extract(e.value, '$[1]'),
            json_extract(e.value, '$[2]'), json_extract(e.value, '$[3]'),
            json_extract(e.value, '$[4]')
        FROM ticket_samples AS t, json_each(t.samples) AS s
        JOIN goals AS goal ON goal.sample_set = s.key, json_each(s.value) AS e
    """,
}


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    with op.batch_alter_table("goals", schema=_schema(dialect)) as goals:
        goals.add_column(sa.Column("sample_set", sa.String(length=64), nullable=True))
    op.execute(sa.text(f"UPDATE {_table('goals', dialect)} SET sample_set = id"))
    with op.batch_alter_table("goals", schema=_schema(dialect)) as goals:
        goals.alter_column("sample_set", existing_type=sa.String(length=64), nullable=False)
    op.create_table(
        "ticket_samples",
        sa.Column("ticket_id", sa.String(length=255), nullable=False),
        sa.Column(
            "samples",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("ticket_id", name=op.f("pk_ticket_samples")),
        schema="sla",
    )
    op.execute(sa.text(_MOVE[dialect]))
    op.execute(
        sa.text(f"DELETE FROM {_table('goal_samples', dialect)} WHERE key NOT LIKE 'survey:%'")
    )


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.execute(sa.text(_BACK[dialect]))
    op.drop_table("ticket_samples", schema="sla")
    with op.batch_alter_table("goals", schema=_schema(dialect)) as goals:
        goals.drop_column("sample_set")


def _schema(dialect: str) -> str | None:
    # SQLite keeps each service in its own file: ALTER TABLE must not name the schema there.
    return None if dialect == "sqlite" else "sla"


def _table(name: str, dialect: str) -> str:
    return name if dialect == "sqlite" else f"sla.{name}"
