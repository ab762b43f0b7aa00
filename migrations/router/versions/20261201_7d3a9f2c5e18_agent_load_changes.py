"""agent loads kept as appended changes, folded into per-agent totals

Revision ID: 7d3a9f2c5e18
Revises: 5a7c0e2b9d41
Create Date: 2026-12-01 18:45:00.000000+00:00

An agent's load on a channel is how many of their tickets are active (``new``, ``open`` or
``on_hold``). Row triggers on ``tickets`` append each change of it to ``agent_load_changes``
(+1 / -1, on every insert, delete and change of a ticket's assignee, status or channel, whatever
wrote it). Appending takes no lock that another transaction could wait on, unlike updating a
count in place. router folds the changes into ``agent_loads`` in the background; a load is the
total plus the changes not yet folded. ``agent_loads`` is filled here from the tickets as they
are. The statuses are those of ``services.router.repository.ACTIVE_STATUSES`` as of this
revision: a change to that list needs a migration that replaces the triggers and counts again.

The index that served counting loads (``ix_tickets_assignee_status_channel``) goes: nothing
counts them any more, and every write of a ticket paid for it.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "7d3a9f2c5e18"
down_revision: str | None = "5a7c0e2b9d41"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ACTIVE = "('new', 'open', 'on_hold')"
CHANGED = "UPDATE OF assignee_id, status, channel"


def _postgres_statements() -> list[str]:
    def append(row: str, delta: str) -> str:
        return f"""
    INSERT INTO router.agent_load_changes (agent_id, channel, delta)
    VALUES ({row}.assignee_id, {row}.channel, {delta});"""

    return [
        f"""
CREATE FUNCTION router.append_agent_load_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP <> 'INSERT' AND OLD.assignee_id IS NOT NULL AND OLD.status IN {ACTIVE} THEN
    {append("OLD", "-1")}
  END IF;
  IF TG_OP <> 'DELETE' AND NEW.assignee_id IS NOT NULL AND NEW.status IN {ACTIVE} THEN
    {append("NEW", "1")}
  END IF;
  RETURN NULL;
END
$$""",
        # Only for a ticket that counts: the webhook door's inserts (unassigned) call nothing.
        f"""
CREATE TRIGGER append_agent_load_change_on_insert AFTER INSERT ON router.tickets
FOR EACH ROW WHEN (NEW.assignee_id IS NOT NULL AND NEW.status IN {ACTIVE})
EXECUTE FUNCTION router.append_agent_load_change()""",
        f"""
CREATE TRIGGER append_agent_load_change_on_delete AFTER DELETE ON router.tickets
FOR EACH ROW WHEN (OLD.assignee_id IS NOT NULL AND OLD.status IN {ACTIVE})
EXECUTE FUNCTION router.append_agent_load_change()""",
        f"""
CREATE TRIGGER append_agent_load_change_on_update AFTER {CHANGED} ON router.tickets
FOR EACH ROW WHEN (
    OLD.assignee_id IS DISTINCT FROM NEW.assignee_id
    OR OLD.status IS DISTINCT FROM NEW.status
    OR OLD.channel IS DISTINCT FROM NEW.channel
) EXECUTE FUNCTION router.append_agent_load_change()""",
    ]


SQLITE_TRIGGERS = {
    # name: (when, row, delta). An UPDATE fires both of its own: the old row's load loses the
    # ticket, the new row's gains it (in either order, the same totals).
    "insert": ("INSERT", "NEW", "1"),
    "delete": ("DELETE", "OLD", "-1"),
    "update_new": (CHANGED, "NEW", "1"),
    "update_old": (CHANGED, "OLD", "-1"),
}


def _sqlite_statements() -> list[str]:
    return [
        f"""
CREATE TRIGGER append_agent_load_change_on_{name} AFTER {when} ON tickets
WHEN {row}.assignee_id IS NOT NULL AND {row}.status IN {ACTIVE}
BEGIN
    INSERT INTO agent_load_changes (agent_id, channel, delta)
    VALUES ({row}.assignee_id, {row}.channel, {delta});
END"""
        for name, (when, row, delta) in SQLITE_TRIGGERS.items()
    ]


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    schema = None if sqlite else "router"
    op.create_table(
        "agent_loads",
        sa.Column("agent_id", sa.String(length=100), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("active", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("agent_id", "channel", name=op.f("pk_agent_loads")),
        schema=schema,
    )
    op.create_table(
        "agent_load_changes",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("agent_id", sa.String(length=100), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("delta", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agent_load_changes")),
        schema=schema,
    )
    op.create_index(
        op.f("ix_router_agent_load_changes_agent_id"),
        "agent_load_changes",
        ["agent_id"],
        schema=schema,
    )
    for statement in _sqlite_statements() if sqlite else _postgres_statements():
        op.execute(sa.text(statement))
    op.drop_index("ix_tickets_assignee_status_channel", table_name="tickets", schema=schema)
    prefix = "" if sqlite else "router."
    op.execute(
        sa.text(
            f"""
INSERT INTO {prefix}agent_loads (agent_id, channel, active)
SELECT assignee_id, channel, count(*) FROM {prefix}tickets
WHERE assignee_id IS NOT NULL AND status IN {ACTIVE}
GROUP BY assignee_id, channel"""
        )
    )


def downgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    schema = None if sqlite else "router"
    if sqlite:
        for name in SQLITE_TRIGGERS:
            op.execute(sa.text(f"DROP TRIGGER append_agent_load_change_on_{name}"))
    else:
        for name in ("update", "insert", "delete"):
            op.execute(
                sa.text(f"DROP TRIGGER append_agent_load_change_on_{name} ON router.tickets")
            )
        op.execute(sa.text("DROP FUNCTION router.append_agent_load_change()"))
    op.drop_index(
        op.f("ix_router_agent_load_changes_agent_id"),
        table_name="agent_load_changes",
        schema=schema,
    )
    op.drop_table("agent_load_changes", schema=schema)
    op.drop_table("agent_loads", schema=schema)
    op.create_index(
        "ix_tickets_assignee_status_channel",
        "tickets",
        ["assignee_id", "status", "channel"],
        unique=False,
        schema=schema,
    )
