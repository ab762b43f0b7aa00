"""agent loads kept by triggers on tickets

Revision ID: 2b7e4c1d9a53
Revises: 5a7c0e2b9d41
Create Date: 2026-12-01 16:00:00.000000+00:00

``agent_loads`` holds, per agent and channel, how many of the agent's tickets are active
(``new``, ``open`` or ``on_hold``). Row triggers on ``tickets`` keep it on every insert, delete
and change of a ticket's assignee, status or channel, whatever wrote it; it is filled here
from the tickets as they are. The statuses are those of ``services.router.repository
.ACTIVE_STATUSES`` as of this revision: a change to that list needs a migration that replaces
the triggers and counts again.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "2b7e4c1d9a53"
down_revision: str | None = "5a7c0e2b9d41"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ACTIVE = "('new', 'open', 'on_hold')"


def _postgres_statements() -> list[str]:
    def add(row: str, delta: str) -> str:
        return f"""
    INSERT INTO router.agent_loads AS load (agent_id, channel, active)
    VALUES ({row}.assignee_id, {row}.channel, {delta})
    ON CONFLICT (agent_id, channel) DO UPDATE SET active = load.active + {delta};"""

    return [
        f"""
CREATE FUNCTION router.keep_agent_load() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP <> 'INSERT' AND OLD.assignee_id IS NOT NULL AND OLD.status IN {ACTIVE} THEN
    {add("OLD", "-1")}
  END IF;
  IF TG_OP <> 'DELETE' AND NEW.assignee_id IS NOT NULL AND NEW.status IN {ACTIVE} THEN
    {add("NEW", "1")}
  END IF;
  RETURN NULL;
END
$$""",
        """
CREATE TRIGGER keep_agent_load_on_insert_or_delete AFTER INSERT OR DELETE ON router.tickets
FOR EACH ROW EXECUTE FUNCTION router.keep_agent_load()""",
        """
CREATE TRIGGER keep_agent_load_on_update
AFTER UPDATE OF assignee_id, status, channel ON router.tickets
FOR EACH ROW WHEN (
    OLD.assignee_id IS DISTINCT FROM NEW.assignee_id
    OR OLD.status IS DISTINCT FROM NEW.status
    OR OLD.channel IS DISTINCT FROM NEW.channel
) EXECUTE FUNCTION router.keep_agent_load()""",
    ]


def _sqlite_statements() -> list[str]:
    def trigger(name: str, when: str, row: str, delta: str) -> str:
        return f"""
CREATE TRIGGER {name} AFTER {when} ON tickets
WHEN {row}.assignee_id IS NOT NULL AND {row}.status IN {ACTIVE}
BEGIN
    INSERT INTO agent_loads (agent_id, channel, active)
    VALUES ({row}.assignee_id, {row}.channel, {delta})
    ON CONFLICT (agent_id, channel) DO UPDATE SET active = active + {delta};
END"""

    # An UPDATE fires both: the old row's count loses the ticket, the new row's gains it (in
    # either order, the same counts).
    changed = "UPDATE OF assignee_id, status, channel"
    return [
        trigger("keep_agent_load_on_insert", "INSERT", "NEW", "1"),
        trigger("keep_agent_load_on_delete", "DELETE", "OLD", "-1"),
        trigger("keep_agent_load_on_update_new", changed, "NEW", "1"),
        trigger("keep_agent_load_on_update_old", changed, "OLD", "-1"),
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
    prefix = "" if sqlite else "router."
    for statement in _sqlite_statements() if sqlite else _postgres_statements():
        op.execute(sa.text(statement))
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
    if op.get_bind().dialect.name == "sqlite":
        for name in ("insert", "delete", "update_new", "update_old"):
            op.execute(sa.text(f"DROP TRIGGER keep_agent_load_on_{name}"))
        op.drop_table("agent_loads")
        return
    op.execute(sa.text("DROP TRIGGER keep_agent_load_on_update ON router.tickets"))
    op.execute(sa.text("DROP TRIGGER keep_agent_load_on_insert_or_delete ON router.tickets"))
    op.execute(sa.text("DROP FUNCTION router.keep_agent_load()"))
    op.drop_table("agent_loads", schema="router")
