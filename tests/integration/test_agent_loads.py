"""Agent loads kept by triggers (changes appended to ``router.agent_load_changes``, folded into
``router.agent_loads``) equal a count of the tickets, on PostgreSQL and on SQLite, after every
kind of write to a ticket: insert, assignment, a move to another agent or channel, a status in
and out of the active ones, unassignment, delete, and bulk statements; before and after a fold;
after the migration that creates them, from the tickets already there. And the triggers make no
transaction wait on another: two that change tickets of the same agents in opposite orders both
go through (counting in place deadlocked them)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from services.router import repository
from services.router.models import Ticket
from shared.db import create_engine
from shared.migrate import alembic_config, upgrade
from tests.conftest import database_of_its_own

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
BEFORE_TRIGGERS = "5a7c0e2b9d41"


def _ticket(ticket_id: str, **values: Any) -> Ticket:
    fields: dict[str, Any] = {
        "source": "generic", "external_id": ticket_id, "subject": "s", "status": "open",
        "priority": "normal", "channel": "chat", "requester_id": "r", "created_at": NOW,
        "updated_at": NOW, "assignee_id": None,
    }  # fmt: skip
    return Ticket(id=ticket_id, **{**fields, **values})


async def _counted(session: AsyncSession) -> dict[str, dict[str, int]]:
    rows = await session.execute(
        select(Ticket.assignee_id, Ticket.channel, func.count())
        .where(Ticket.assignee_id.is_not(None), Ticket.status.in_(repository.ACTIVE_STATUSES))
        .group_by(Ticket.assignee_id, Ticket.channel)
    )
    counted: dict[str, dict[str, int]] = {}
    for agent, channel, count in rows:
        counted.setdefault(str(agent), {})[channel] = count
    return counted


async def _check(session: AsyncSession) -> dict[str, dict[str, int]]:
    kept = dict(await repository.agent_loads(session))
    assert kept == await _counted(session)
    return kept


@pytest.fixture(params=["postgresql", "sqlite"])
async def database(
    request: pytest.FixtureRequest, fresh_database: Callable[[], Awaitable[str]], tmp_path: Path
) -> str:
    """A database of the test's own (the migration test downgrades it)."""
    return await database_of_its_own(request.param, fresh_database, tmp_path, "router")


@pytest.fixture
async def engine(database: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database, "router")
    try:
        yield engine
    finally:
        await engine.dispose()


async def test_every_write_to_a_ticket_keeps_the_loads(engine: AsyncEngine) -> None:
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    async with sessions.begin() as session:
        session.add_all(
            [
                _ticket("t1", assignee_id="ana"),
                _ticket("t2", assignee_id="ana", channel="email"),
                _ticket("t3", assignee_id="ben", status="pending"),  # not active
                _ticket("t4"),  # unassigned
                _ticket("t5", assignee_id="ben", status="new"),
            ]
        )
    async with sessions.begin() as session:
        assert await _check(session) == {"ana": {"chat": 1, "email": 1}, "ben": {"chat": 1}}
    steps: list[Any] = [
        update(Ticket).where(Ticket.id == "t4").values(assignee_id="ben"),  # assigned
        update(Ticket).where(Ticket.id == "t1").values(assignee_id="ben"),  # moved
        update(Ticket).where(Ticket.id == "t2").values(channel="chat"),  # another channel
        update(Ticket).where(Ticket.id == "t3").values(status="open"),  # back to active
        update(Ticket).where(Ticket.id == "t5").values(status="solved"),  # done
        update(Ticket).where(Ticket.id == "t2").values(status="on_hold"),  # active to active
        update(Ticket).where(Ticket.id == "t2").values(subject="x"),  # nothing counted changes
        update(Ticket).where(Ticket.assignee_id == "ben").values(assignee_id=None),  # bulk
        update(Ticket).values(assignee_id="cy", status="open"),  # every row at once
        delete(Ticket).where(Ticket.id == "t1"),
    ]
    for number, step in enumerate(steps):
        async with sessions.begin() as session:
            await session.execute(step)
            await _check(session)  # the transaction's own writes are counted
            if number % 2:
                await repository.fold_agent_loads(session)  # folded in the same transaction
                await _check(session)
        if number % 3 == 0:
            async with sessions.begin() as session:
                await repository.fold_agent_loads(session)
            async with sessions.begin() as session:
                await _check(session)
    async with sessions.begin() as session:
        assert await _check(session) == {"cy": {"chat": 4}}
        # The ORM's own writes (a consumer's assignment) go through the same triggers.
        ticket = await session.get(Ticket, "t2")
        assert ticket is not None
        ticket.assignee_id, ticket.status = "dee", "new"
        session.add(_ticket("t6", assignee_id="dee", channel="voice"))
        await session.flush()
        assert await _check(session) == {"cy": {"chat": 3}, "dee": {"chat": 1, "voice": 1}}
    async with sessions.begin() as session:
        loads = await repository.agent_loads(session, ["dee", "nobody"])
        assert loads == {"dee": {"chat": 1, "voice": 1}}


async def test_the_migration_counts_the_tickets_already_there(
    database: str, engine: AsyncEngine
) -> None:
    await asyncio.to_thread(command.downgrade, alembic_config("router", database), BEFORE_TRIGGERS)
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    async with sessions.begin() as session:
        session.add_all(
            [
                _ticket("m1", assignee_id="ana"),
                _ticket("m2", assignee_id="ana"),
                _ticket("m3", assignee_id="ana", status="solved"),
                _ticket("m4", assignee_id="ben", status="new", channel="email"),
                _ticket("m5"),
            ]
        )
    await asyncio.to_thread(upgrade, "router", database)
    async with sessions.begin() as session:
        assert await _check(session) == {"ana": {"chat": 2}, "ben": {"email": 1}}
        await session.execute(update(Ticket).where(Ticket.id == "m5").values(assignee_id="ben"))
        assert await _check(session) == {"ana": {"chat": 2}, "ben": {"chat": 1, "email": 1}}
    await asyncio.to_thread(command.downgrade, alembic_config("router", database), BEFORE_TRIGGERS)
    async with sessions.begin() as session:
        # The triggers went with the table: a write to a ticket no longer touches it.
        await session.execute(update(Ticket).values(assignee_id="cy"))
        assigned = await session.scalar(select(func.count()).where(Ticket.assignee_id == "cy"))
        assert assigned == 5


async def test_writers_of_the_same_agents_never_wait_on_each_other(
    fresh_database: Callable[[], Awaitable[str]],
) -> None:
    """Each transaction solves one agent's ticket, then assigns a waiting ticket to the other
    agent, in opposite orders, both open at once: the load changes they append take no lock the
    other needs, so neither waits (with counts updated in place they deadlocked)."""
    engine = create_engine(await fresh_database(), "router")
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    try:
        async with sessions.begin() as session:
            session.add_all(
                [
                    _ticket("a1", assignee_id="ana"),
                    _ticket("b1", assignee_id="ben"),
                    _ticket("w1"),
                    _ticket("w2"),
                ]
            )
        async with sessions() as first, sessions() as second, first.begin(), second.begin():
            await first.execute(update(Ticket).where(Ticket.id == "a1").values(status="solved"))
            await second.execute(update(Ticket).where(Ticket.id == "b1").values(status="solved"))
            await asyncio.wait_for(
                first.execute(update(Ticket).where(Ticket.id == "w1").values(assignee_id="ben")),
                5,
            )
            await asyncio.wait_for(
                second.execute(update(Ticket).where(Ticket.id == "w2").values(assignee_id="ana")),
                5,
            )
            # A fold meanwhile sees neither's changes (not committed) and waits for neither.
            async with sessions.begin() as folder:
                await asyncio.wait_for(repository.fold_agent_loads(folder), 5)
        async with sessions.begin() as session:
            assert await _check(session) == {"ana": {"chat": 1}, "ben": {"chat": 1}}
            await repository.fold_agent_loads(session)
            assert await _check(session) == {"ana": {"chat": 1}, "ben": {"chat": 1}}
    finally:
        await engine.dispose()
