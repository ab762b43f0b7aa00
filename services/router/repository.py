"""Every query router makes."""

from __future__ import annotations

import dataclasses
import functools
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar, cast

import asyncpg
import orjson
from sqlalchemy import (
    Select,
    Table,
    and_,
    bindparam,
    case,
    delete,
    func,
    insert,
    or_,
    select,
    union_all,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.util import identity_key

from services.router.assignment import AgentView
from services.router.models import (
    Agent,
    AgentLoad,
    AgentLoadChange,
    Base,
    IdempotencyKey,
    ProviderMapping,
    RoutingDecision,
    RoutingRule,
    Ticket,
    TicketMessage,
    WebhookDelivery,
)
from shared.db import (
    BatchWrite,
    DriverPool,
    among,
    dialect_name,
    existing_ids,
    insert_ignoring_conflicts,
    is_postgres,
    queue_at_end,
)
from shared.pagination import Slice, paginate

# Tickets that occupy an agent's capacity: pending waits on the customer, solved is done. The
# triggers that append agent load changes name them too: changing them takes a migration.
ACTIVE_STATUSES = ("new", "open", "on_hold")
PRIORITY_RANK = {"urgent": 3, "high": 2, "normal": 1, "low": 0}

M = TypeVar("M", Ticket, Agent)


def _by_id(model: type[M], for_update: bool, skip_locked: bool) -> Select[Any]:
    statement = select(model).where(model.id == bindparam("row_id"))
    if for_update:
        # Reload: the identity map may hold a copy read before another transaction committed.
        statement = statement.with_for_update(skip_locked=skip_locked).execution_options(
            populate_existing=True
        )
    return statement


# Built once: the hot path (a consumer routing tickets) runs these for every ticket, and
# building a statement and its cache key costs more than running it through the cache.
_BY_ID: dict[tuple[type[Any], bool, bool], Select[Any]] = {
    **{(Ticket, u, k): _by_id(Ticket, u, k) for u in (False, True) for k in (False, True)},
    **{(Agent, u, k): _by_id(Agent, u, k) for u in (False, True) for k in (False, True)},
}


async def _get(
    session: AsyncSession, model: type[M], row_id: str, for_update: bool, skip_locked: bool
) -> M | None:
    """``for_update`` locks the row and reloads it; ``skip_locked`` gives None if another
    transaction holds it (PostgreSQL; SQLite serializes writers anyway)."""
    statement = _BY_ID[(model, for_update, for_update and skip_locked)]
    row: M | None = (await session.execute(statement, {"row_id": row_id})).scalar_one_or_none()
    return row


async def get_ticket(
    session: AsyncSession, ticket_id: str, *, for_update: bool = False, skip_locked: bool = False
) -> Ticket | None:
    """See ``_get`` for ``for_update`` and ``skip_locked``."""
    return await _get(session, Ticket, ticket_id, for_update, skip_locked)


async def existing_ticket_ids(session: AsyncSession, ticket_ids: Iterable[str]) -> set[str]:
    """Which of ``ticket_ids`` have a row (one statement for all of them)."""
    return await existing_ids(session, Ticket.id, ticket_ids)


async def page_tickets(
    session: AsyncSession,
    *,
    status: str | None,
    priority: str | None,
    assignee_id: str | None,
    group: str | None,
    limit: int,
    cursor: str | None,
) -> Slice[Ticket]:
    """Newest first."""
    statement = select(Ticket)
    if status:
        statement = statement.where(Ticket.status == status)
    if priority:
        statement = statement.where(Ticket.priority == priority)
    if assignee_id:
        statement = statement.where(Ticket.assignee_id == assignee_id)
    if group:
        statement = statement.where(Ticket.group == group)
    keys = (Ticket.created_at, Ticket.id)
    return await paginate(
        session, statement, keys=keys, limit=limit, cursor=cursor, descending=True
    )


async def routing_history(session: AsyncSession, ticket_id: str) -> Sequence[RoutingDecision]:
    statement = (
        select(RoutingDecision)
        .where(RoutingDecision.ticket_id == ticket_id)
        .order_by(RoutingDecision.at, RoutingDecision.id)
    )
    return (await session.execute(statement)).scalars().all()


async def get_message(session: AsyncSession, message_id: str) -> TicketMessage | None:
    return await session.get(TicketMessage, message_id)


async def get_agent(
    session: AsyncSession, agent_id: str, *, for_update: bool = False, skip_locked: bool = False
) -> Agent | None:
    """See ``_get`` for ``for_update`` and ``skip_locked``."""
    return await _get(session, Agent, agent_id, for_update, skip_locked)


# Every agent of ``ids`` not locked by another transaction, locked (never waits, so it cannot
# deadlock), as committed now.
_LOCK_AGENTS = (
    select(Agent)
    .where(Agent.id.in_(bindparam("ids", expanding=True)))
    .order_by(Agent.id)
    .with_for_update(skip_locked=True)
    .execution_options(populate_existing=True)
)


async def lock_free_agents(session: AsyncSession, agent_ids: Sequence[str]) -> Sequence[Agent]:
    """Those of ``agent_ids`` no other transaction holds, locked in one statement; the others
    are left out (SQLite, which serializes writers, gives them all)."""
    if not agent_ids:
        return []
    return (await session.execute(_LOCK_AGENTS, {"ids": list(agent_ids)})).scalars().all()


async def page_agents(session: AsyncSession, *, limit: int, cursor: str | None) -> Slice[Agent]:
    return await paginate(session, select(Agent), keys=(Agent.id,), limit=limit, cursor=cursor)


async def online_agents(session: AsyncSession) -> Sequence[Agent]:
    statement = select(Agent).where(Agent.status == "online").order_by(Agent.id)
    return (await session.execute(statement)).scalars().all()


async def online_agent_views(session: AsyncSession) -> list[AgentView]:
    """The online agents as routing sees them, without loads (``agent_loads``); one Core read."""
    statement = (
        select(
            Agent.id,
            Agent.status,
            Agent.groups,
            Agent.skills,
            Agent.capacity,
            Agent.last_assigned_at,
        )
        .where(Agent.status == "online")
        .order_by(Agent.id)
    )
    return [
        AgentView(
            id=row.id,
            status=row.status,
            groups=frozenset(row.groups or []),
            skills=frozenset(row.skills or []),
            capacity=dict(row.capacity or {}),
            last_assigned_at=row.last_assigned_at,
        )
        for row in (await session.execute(statement)).all()
    ]


async def mark_assigned(session: AsyncSession, agent_id: str, at: datetime) -> None:
    """Record that the agent was just given a ticket (round-robin among equals): on the loaded
    row if this session holds it; and, in a consumer's transaction, one UPDATE per agent at its
    end with the latest time (else one UPDATE now)."""
    agent = session.identity_map.get(identity_key(Agent, agent_id))
    if queue_at_end(session, "router_last_assigned", (agent_id, at), _write_last_assigned(session)):
        if isinstance(agent, Agent):  # as the queued UPDATE will leave it, without a flush's
            set_committed_value(agent, "last_assigned_at", at)
    elif isinstance(agent, Agent):
        agent.last_assigned_at = at
    else:
        await session.execute(update(Agent).where(Agent.id == agent_id).values(last_assigned_at=at))


def _write_last_assigned(session: AsyncSession) -> BatchWrite:
    async def write(items: list[tuple[str, datetime]]) -> None:
        latest: dict[str, datetime] = {}
        for agent_id, at in items:
            latest[agent_id] = max(at, latest.get(agent_id, at))
        table = cast(Table, Agent.__table__)
        await session.execute(
            update(table)
            .where(table.c.id == bindparam("agent"))
            .values(last_assigned_at=bindparam("at")),
            [{"agent": agent_id, "at": at} for agent_id, at in latest.items()],
        )

    return write


def add_decision(session: AsyncSession, decision: RoutingDecision) -> None:
    """Add a routing decision; in a consumer's transaction all of them are inserted in one
    statement at its end (nothing reads them back before)."""
    row = {
        "ticket_id": decision.ticket_id,
        "at": decision.at,
        "kind": decision.kind,
        "changes": decision.changes,
        "reason": decision.reason,
    }
    if not queue_at_end(session, "router_decisions", row, _write_decisions(session)):
        session.add(decision)


def _write_decisions(session: AsyncSession) -> BatchWrite:
    async def write(rows: list[dict[str, Any]]) -> None:
        await session.execute(insert(cast(Table, RoutingDecision.__table__)), rows)

    return write


def _loads_query(of_agents: bool) -> Select[Any]:
    """The loads as ``agent_loads`` reads them: each agent's folded totals plus the changes not
    yet folded, summed per channel (of the ``agent_ids`` parameter when ``of_agents``)."""
    totals = select(AgentLoad.agent_id, AgentLoad.channel, AgentLoad.active.label("n"))
    changes = select(
        AgentLoadChange.agent_id, AgentLoadChange.channel, AgentLoadChange.delta.label("n")
    )
    if of_agents:
        agent_ids: Any = bindparam("agent_ids", expanding=True)
        totals = totals.where(AgentLoad.agent_id.in_(agent_ids))
        changes = changes.where(AgentLoadChange.agent_id.in_(agent_ids))
    both = union_all(totals, changes).subquery()
    load = func.sum(both.c.n)
    return (
        select(both.c.agent_id, both.c.channel, load)
        .group_by(both.c.agent_id, both.c.channel)
        .having(load > 0)
    )


# Built once: routing reads loads in every consumer batch.
_LOADS = _loads_query(False)
_LOADS_OF = _loads_query(True)


async def agent_loads(
    session: AsyncSession, agent_ids: Sequence[str] | None = None
) -> dict[str, dict[str, int]]:
    """Active tickets per agent and channel (of ``agent_ids``, else of every agent), as the
    triggers on ``tickets`` keep them (``models.AgentLoadChange``), this transaction's own
    writes to tickets included."""
    if agent_ids is not None and not agent_ids:
        return {}
    statement = _LOADS if agent_ids is None else _LOADS_OF
    parameters = {} if agent_ids is None else {"agent_ids": list(agent_ids)}
    loads: dict[str, dict[str, int]] = defaultdict(dict)
    for agent_id, channel, active in await session.execute(statement, parameters):
        loads[agent_id][channel] = int(active)
    return loads


_changes = cast(Table, AgentLoadChange.__table__)
_totals = cast(Table, AgentLoad.__table__)
# One folder at a time on PostgreSQL (two deleting the same changes would wait on each other).
_FOLD_LOCK = 0x726F75746572  # "router"


async def fold_agent_loads(session: AsyncSession) -> None:
    """Move the appended load changes into the agents' totals (``models.AgentLoad``), in the
    session's transaction: a load read stays a few rows however many changes came.

    On PostgreSQL in one statement, so the changes summed are exactly those deleted (one
    snapshot): a change committed meanwhile stays for the next fold. Skipped while another
    transaction folds. On SQLite the transaction holds the database's write lock: nothing is
    committed between the sum and the delete."""
    if dialect_name(session) == "postgresql":
        if not await session.scalar(select(func.pg_try_advisory_xact_lock(_FOLD_LOCK))):
            return
        moved = (
            delete(_changes)
            .returning(_changes.c.agent_id, _changes.c.channel, _changes.c.delta)
            .cte("moved")
        )
        await session.execute(_added_to_totals(postgresql.insert, moved))
        return
    await session.execute(_added_to_totals(sqlite.insert, _changes))
    await session.execute(delete(_changes))


def _added_to_totals(insert: Callable[[Table], Any], changes: Any) -> Any:
    """The statement that adds ``changes`` (rows of ``agent_id``, ``channel``, ``delta``),
    summed per agent and channel, to the agents' folded totals, with the dialect's ``insert``."""
    summed = select(changes.c.agent_id, changes.c.channel, func.sum(changes.c.delta)).group_by(
        changes.c.agent_id, changes.c.channel
    )
    statement = insert(_totals).from_select(["agent_id", "channel", "active"], summed)
    return statement.on_conflict_do_update(
        index_elements=["agent_id", "channel"],
        set_={"active": _totals.c.active + statement.excluded.active},
    )


async def waiting_tickets(session: AsyncSession, limit: int = 200) -> Sequence[Ticket]:
    """Unassigned active tickets, most urgent then oldest first."""
    rank = case(PRIORITY_RANK, value=Ticket.priority, else_=0)
    statement = (
        select(Ticket)
        .where(
            Ticket.assignee_id.is_(None),
            Ticket.status.in_(ACTIVE_STATUSES),
            Ticket.manual_assignment.is_(False),
        )
        .order_by(rank.desc(), Ticket.created_at, Ticket.id)
        .limit(limit)
    )
    return (await session.execute(statement)).scalars().all()


# --- routing ----------------------------------------------------------------------------------


PREVIOUS_AGENTS_SCAN = 20  # rows read to find up to 5 distinct agents
PREVIOUS_AGENTS = 5
# A requester's tickets that name a previous agent: assigned, and open or recently solved.
_HELD_RECENTLY = and_(
    Ticket.assignee_id.is_not(None),
    or_(
        Ticket.status.in_((*ACTIVE_STATUSES, "pending")),
        and_(
            Ticket.status.in_(("solved", "closed")),
            Ticket.solved_at >= bindparam("solved_since", type_=Ticket.solved_at.type),
        ),
    ),
)
_PREVIOUS_AGENTS = (
    select(Ticket.assignee_id)
    .where(
        Ticket.requester_id == bindparam("requester_id"),
        Ticket.id != bindparam("ticket_id"),
        _HELD_RECENTLY,
    )
    .order_by(Ticket.updated_at.desc())
    .limit(PREVIOUS_AGENTS_SCAN)
)


def _previous_agents_by_requester(postgres: bool) -> Any:
    """``previous_agents_by_requester``'s statement, built once per dialect."""
    rank = (
        func.row_number()
        .over(partition_by=Ticket.requester_id, order_by=Ticket.updated_at.desc())
        .label("rank")
    )
    ranked = (
        select(Ticket.requester_id, Ticket.id, Ticket.assignee_id, rank)
        .where(among(Ticket.requester_id, "requesters", postgres), _HELD_RECENTLY)
        .subquery()
    )
    return (
        select(ranked.c.requester_id, ranked.c.id, ranked.c.assignee_id)
        .where(ranked.c.rank <= PREVIOUS_AGENTS_SCAN + 1)
        .order_by(ranked.c.requester_id, ranked.c.rank)
    )


_PREVIOUS_AGENTS_BY_REQUESTER = {
    postgres: _previous_agents_by_requester(postgres) for postgres in (True, False)
}


def distinct_agents(agent_ids: Iterable[str | None], limit: int = PREVIOUS_AGENTS) -> list[str]:
    """The first ``limit`` distinct agents, in order."""
    agents: list[str] = []
    for agent_id in agent_ids:
        if agent_id is not None and agent_id not in agents:
            agents.append(agent_id)
    return agents[:limit]


async def previous_agents(
    session: AsyncSession, ticket: Ticket, solved_since: datetime
) -> list[str]:
    """Agents of the requester's other open or recently solved tickets, most recent first."""
    parameters = {
        "requester_id": ticket.requester_id,
        "ticket_id": ticket.id,
        "solved_since": solved_since,
    }
    rows = (await session.execute(_PREVIOUS_AGENTS, parameters)).all()
    return distinct_agents(agent_id for (agent_id,) in rows)


async def previous_agents_by_requester(
    session: AsyncSession, requester_ids: Iterable[str], solved_since: datetime
) -> dict[str, list[tuple[str, str]]]:
    """``previous_agents``' rows for many requesters in one statement: for each requester (an
    empty list when none), (ticket id, agent) of their tickets, most recent first, one more
    than ``previous_agents`` scans so that a caller can leave its own ticket out."""
    requesters = sorted(set(requester_ids))
    found: dict[str, list[tuple[str, str]]] = {requester: [] for requester in requesters}
    if not requesters:
        return found
    statement = _PREVIOUS_AGENTS_BY_REQUESTER[is_postgres(session)]
    parameters = {"requesters": requesters, "solved_since": solved_since}
    for requester_id, ticket_id, agent_id in await session.execute(statement, parameters):
        found[requester_id].append((ticket_id, agent_id))
    return found


async def unanswered_tickets(session: AsyncSession, agent_id: str) -> Sequence[Ticket]:
    """The agent's active, router-assigned tickets without a public agent message yet."""
    answered = (
        select(TicketMessage.id)
        .where(
            TicketMessage.ticket_id == Ticket.id,
            TicketMessage.author == "agent",
            TicketMessage.public.is_(True),
        )
        .exists()
    )
    statement = (
        select(Ticket)
        .where(
            Ticket.assignee_id == agent_id,
            Ticket.status.in_(ACTIVE_STATUSES),
            Ticket.manual_assignment.is_(False),
            ~answered,
        )
        .order_by(Ticket.created_at, Ticket.id)
    )
    return (await session.execute(statement)).scalars().all()


async def known_groups_and_skills(session: AsyncSession) -> tuple[set[str], set[str]]:
    """Every group and skill at least one agent has, whatever their status."""
    groups: set[str] = set()
    skills: set[str] = set()
    for agent_groups, agent_skills in (
        await session.execute(select(Agent.groups, Agent.skills))
    ).all():
        groups.update(agent_groups or [])
        skills.update(agent_skills or [])
    return groups, skills


RULE_ORDER = (RoutingRule.position, RoutingRule.id)


async def list_rules(session: AsyncSession) -> Sequence[RoutingRule]:
    """All rules in the order they are tried."""
    return (await session.execute(select(RoutingRule).order_by(*RULE_ORDER))).scalars().all()


async def page_rules(
    session: AsyncSession, *, limit: int, cursor: str | None
) -> Slice[RoutingRule]:
    return await paginate(session, select(RoutingRule), keys=RULE_ORDER, limit=limit, cursor=cursor)


async def get_rule(session: AsyncSession, rule_id: str) -> RoutingRule | None:
    return await session.get(RoutingRule, rule_id)


# --- inbound webhook deliveries and idempotency keys ----------------------------------------------


async def _insert_if_absent(session: AsyncSession, model: type[Any], **values: Any) -> bool:
    """Insert a row unless one with the same unique key exists; whether it was inserted."""
    statement = insert_ignoring_conflicts(model.__table__, dialect_name(session), **values)
    result: Any = await session.execute(statement)
    return bool(result.rowcount)


@dataclass(frozen=True)
class Delivery:
    """One webhook delivery as stored: the dedupe key and the raw payload for audit."""

    provider: str
    delivery_key: str
    ticket_ids: list[str]
    event_types: list[str]
    body: str
    received_at: datetime


async def add_webhook_delivery(session: AsyncSession, delivery: Delivery) -> bool:
    """Record a delivery; False (and nothing written) if this provider's key is already stored.

    On PostgreSQL a concurrent duplicate waits for the first transaction, then does nothing.
    """
    return await _insert_if_absent(
        session,
        WebhookDelivery,
        ticket_id=delivery.ticket_ids[0],
        **dataclasses.asdict(delivery),
    )


# The webhook door's statements on PostgreSQL, sent on asyncpg directly (``shared.db.DriverPool``,
# autocommit). One statement writes a group of deliveries (``shared.db.GroupCommit``: the requests
# that arrived while the previous one was in flight), so one round trip and one transaction: the
# delivery rows, then the events of the deliveries that were new, in the outbox, in the order of
# the group. A concurrent duplicate (another process) waits on the unique key, then inserts
# nothing, so the events are written once. The rows go in key order, so that two processes'
# groups never wait on each other in a cycle (a deadlock); the events keep the group's order.
_DELIVERIES_WITH_EVENTS = """
WITH given AS (
    SELECT * FROM unnest(
        $1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::timestamptz[]
    ) WITH ORDINALITY
        AS d(provider, delivery_key, ticket_id, ticket_ids, event_types, body, received_at, position)
), delivery AS (
    INSERT INTO {deliveries}
        (provider, delivery_key, ticket_id, ticket_ids, event_types, body, received_at)
    SELECT provider, delivery_key, ticket_id, ticket_ids::jsonb, event_types::jsonb, body,
        received_at
    FROM given
    ORDER BY provider, delivery_key
    ON CONFLICT (provider, delivery_key) DO NOTHING
    RETURNING provider, delivery_key
), new AS (
    SELECT given.position FROM given JOIN delivery USING (provider, delivery_key)
), events AS (
    INSERT INTO {outbox} (event_id, topic, key, value, created_at)
    SELECT e.event_id, e.topic, e.key, e.value, e.created_at
    FROM unnest($8::bigint[], $9::text[], $10::text[], $11::text[], $12::bytea[],
        $13::timestamptz[])
        WITH ORDINALITY AS e(delivery, event_id, topic, key, value, created_at, position)
    WHERE e.delivery IN (SELECT position FROM new)
    ORDER BY e.position
)
SELECT position FROM new
"""
_MAPPING_MAPS = "SELECT status, priority FROM {mappings} WHERE provider = $1"


def _fullname(model: type[Base]) -> str:
    return cast(Table, model.__table__).fullname


@functools.cache
def _deliveries_with_events_sql(outbox: str) -> str:
    return _DELIVERIES_WITH_EVENTS.format(deliveries=_fullname(WebhookDelivery), outbox=outbox)


@functools.cache
def _mapping_maps_sql() -> str:
    return _MAPPING_MAPS.format(mappings=_fullname(ProviderMapping))


@dataclass(frozen=True)
class DeliveryWithEvents:
    """A delivery and its outbox rows (``Outbox.row``), written together or not at all."""

    delivery: Delivery
    rows: list[dict[str, Any]]


async def add_webhook_deliveries_with_events(
    pool: DriverPool, conn: asyncpg.Connection, outbox: Table, writes: Sequence[DeliveryWithEvents]
) -> list[bool]:
    """PostgreSQL: record deliveries and write the outbox rows of those that were new, in one
    statement; for each delivery, whether it was new. A delivery whose provider's key is already
    stored, or given earlier in ``writes``, is a duplicate: nothing of it is written."""
    first: dict[tuple[str, str], int] = {}  # (provider, key) → its position among those sent
    sent: list[Delivery] = []
    events: list[tuple[int, dict[str, Any]]] = []
    for write in writes:
        delivery = write.delivery
        key = (delivery.provider, delivery.delivery_key)
        if key not in first:
            sent.append(delivery)
            first[key] = len(sent)
            events.extend((len(sent), row) for row in write.rows)
    rows = await pool.fetch(
        conn,
        _deliveries_with_events_sql(outbox.fullname),
        [d.provider for d in sent],
        [d.delivery_key for d in sent],
        [d.ticket_ids[0] for d in sent],
        [orjson.dumps(d.ticket_ids).decode() for d in sent],
        [orjson.dumps(d.event_types).decode() for d in sent],
        [d.body for d in sent],
        [d.received_at for d in sent],
        [position for position, _ in events],
        [row["event_id"] for _, row in events],
        [row["topic"] for _, row in events],
        [row["key"] for _, row in events],
        [row["value"] for _, row in events],
        [row["created_at"] for _, row in events],
    )
    new = {row[0] for row in rows}
    answers: list[bool] = []
    for write in writes:
        key = (write.delivery.provider, write.delivery.delivery_key)
        # A later delivery with the key of an earlier one in ``writes`` is its duplicate.
        answers.append(first.pop(key, None) in new)
    return answers


async def provider_mapping_maps(
    pool: DriverPool, conn: asyncpg.Connection, provider: str
) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """A provider's (status, priority) maps, read on the door's connection; None when it has
    none."""
    row = await pool.fetchrow(conn, _mapping_maps_sql(), provider)
    if row is None:
        return None
    return orjson.loads(row["status"]), orjson.loads(row["priority"])


async def page_deliveries_for(
    session: AsyncSession, ticket_id: str, *, limit: int, cursor: str | None
) -> Slice[WebhookDelivery]:
    """The deliveries that reported on a ticket, oldest first."""
    statement = select(WebhookDelivery).where(WebhookDelivery.ticket_id == ticket_id)
    return await paginate(
        session, statement, keys=(WebhookDelivery.id,), limit=limit, cursor=cursor
    )


async def add_idempotency_key(
    session: AsyncSession, key: str, request_hash: str, created_at: datetime
) -> bool:
    """Claim ``key``; False (and nothing written) if it is already stored."""
    return await _insert_if_absent(
        session, IdempotencyKey, key=key, request_hash=request_hash, created_at=created_at
    )


async def get_idempotency_key(
    session: AsyncSession, key: str, *, reload: bool = False
) -> IdempotencyKey | None:
    """``reload`` reads the row again even if this session already holds a copy."""
    return await session.get(IdempotencyKey, key, populate_existing=reload)


async def get_provider_mapping(
    session: AsyncSession, provider: str, *, for_update: bool = False
) -> ProviderMapping | None:
    return await session.get(
        ProviderMapping, provider, with_for_update=for_update, populate_existing=for_update
    )


async def ensure_provider_mapping(session: AsyncSession, provider: str, now: datetime) -> None:
    """Create the provider's empty mapping row unless it exists (safe when two race)."""
    await session.execute(
        insert_ignoring_conflicts(
            ProviderMapping.__table__,
            dialect_name(session),
            provider=provider,
            status={},
            priority={},
            updated_at=now,
        )
    )
