"""sla's locked ticket read that brings the goal state along (``lock_ticket_reading_state``) on
PostgreSQL: one statement when nobody else holds the ticket, and never a snapshot older than the
lock when another transaction held it and wrote the ticket's goal state meanwhile."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.sla.goals import repository
from services.sla.goals.models import Timeline
from services.sla.models import TrackedTicket
from shared.db import create_engine, make_sessionmaker, writes_at_end
from shared.runtime import BATCH_EVENTS

CREATED = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
GOAL = "goal-locked-read"


@pytest.fixture
async def sessions(
    fresh_database: Callable[[], Awaitable[str]],
) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(await fresh_database(), "sla")
    yield make_sessionmaker(engine)
    await engine.dispose()


def _timeline(ticket_id: str, version: int, events: list[Any]) -> Timeline:
    return Timeline(
        ticket_id=ticket_id,
        created_at=CREATED,
        channel="chat",
        group=None,
        priority="normal",
        status="open",
        document={"id": ticket_id},
        events=events,
        version=version,
        demo=False,
    )


def _entry() -> list[Any]:
    """A first-response sample as ``ticket_samples`` keeps it (``GOAL`` is its sample set)."""
    return ["first_response", "2026-11-30", 1, 0, 20.0]


async def _ticket(sessions: async_sessionmaker[AsyncSession], ticket_id: str) -> None:
    async with sessions.begin() as session:
        session.add(
            TrackedTicket(
                id=ticket_id,
                status="open",
                priority="normal",
                channel="chat",
                group=None,
                assignee_id=None,
                document={"id": ticket_id},
                policy_id=None,
                agent_replies=0,
                reopens=0,
                escalations=0,
                version=1,
                created_at=CREATED,
                solved_at=None,
            )
        )
        await session.flush()
        writes = repository.SampleWrites(
            timeline=_timeline(ticket_id, 1, [[0.0, "s", "open"]]), ticket_id=ticket_id
        )
        await repository.write_samples(session, writes)


async def _read_waiting_for_the_lock(
    sessions: async_sessionmaker[AsyncSession], ticket_id: str
) -> asyncio.Task[repository.TicketState | None]:
    """Another transaction's locked read of the ticket, started while the caller holds the
    lock: checked to be blocked on it; its task gives the goal state it read."""

    async def read() -> repository.TicketState | None:
        async with sessions.begin() as session:
            ticket = await repository.lock_ticket_reading_state(session, ticket_id)
            assert ticket is not None
            return repository.take_prefetched_state(session, ticket_id)

    waiting = asyncio.create_task(read())
    await asyncio.sleep(0.5)
    assert not waiting.done()  # blocked on the ticket's row lock
    return waiting


def _assert_holder_written(state: repository.TicketState | None) -> None:
    """The state the holder committed: the timeline's version 2 and its one sample."""
    assert state is not None and state.timeline is not None
    assert state.timeline.version == 2
    assert state.samples == {GOAL: [_entry()]}


async def test_one_statement_locks_the_ticket_and_reads_its_goal_state(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await _ticket(sessions, "lr-1")
    statements: list[str] = []
    async with sessions.begin() as session:
        connection = await session.connection()

        def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
            statements.append(statement)

        event.listen(connection.sync_connection, "before_cursor_execute", count)
        ticket = await repository.lock_ticket_reading_state(session, "lr-1")
        event.remove(connection.sync_connection, "before_cursor_execute", count)
        state = repository.take_prefetched_state(session, "lr-1")
    assert ticket is not None and ticket.id == "lr-1"
    assert len(statements) == 1 and "FOR UPDATE" in statements[0]
    assert state is not None and state.timeline is not None
    assert state.timeline.version == 1 and state.samples == {} and not state.answered
    # Handed over once, and only for its own ticket.
    async with sessions.begin() as session:
        await repository.lock_ticket_reading_state(session, "lr-1")
        assert repository.take_prefetched_state(session, "other") is None
        assert repository.take_prefetched_state(session, "lr-1") is None
    # A ticket sla does not know yet: no row, and still the state.
    async with sessions.begin() as session:
        assert await repository.lock_ticket_reading_state(session, "lr-none") is None
        state = repository.take_prefetched_state(session, "lr-none")
        assert state is not None and state.timeline is None


async def test_a_read_that_waited_for_the_lock_sees_what_the_holder_wrote(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """The holder only locks the ticket's row (no sla change to it) and writes the goal state:
    the waiting statement's snapshot predates that commit, so the state must be read again."""
    await _ticket(sessions, "lr-2")
    async with sessions() as holder:
        async with holder.begin():
            await repository.lock_ticket_reading_state(holder, "lr-2")
            repository.take_prefetched_state(holder, "lr-2")
            writes = repository.SampleWrites(
                timeline=_timeline("lr-2", 2, [[0.0, "s", "open"], [20.0, "a", None]]),
                patches={"lr-2": {GOAL: [_entry()]}},
                ticket_id="lr-2",
            )
            await repository.write_samples(holder, writes)

            waiting = await _read_waiting_for_the_lock(sessions, "lr-2")
        state = await asyncio.wait_for(waiting, 10)
    _assert_holder_written(state)


async def test_a_batch_writing_at_its_end_still_makes_a_waiting_read_fresh(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """The holder is a consumer batch: its goal writes wait for the end of its transaction
    (``BatchGoals``), and the ticket's row is touched there, so the waiting read still sees
    its snapshot is stale and reads the state again."""
    await _ticket(sessions, "lr-3")
    async with sessions() as holder:
        async with holder.begin():
            holder.info[BATCH_EVENTS] = ("one event",)
            async with writes_at_end(holder):
                await repository.lock_ticket_reading_state(holder, "lr-3")
                state = repository.take_prefetched_state(holder, "lr-3")
                assert state is not None
                batch = repository.batch_goals(holder)
                assert batch is not None
                timeline = _timeline("lr-3", 2, [[0.0, "s", "open"], [20.0, "a", None]])
                timeline.dirty = True
                batch.keep(state, timeline)
                # What the batch's sample bookkeeping adds at its end (``BatchGoals.writes``).
                batch.writes().patches["lr-3"] = {GOAL: [_entry()]}
                # Kept in the transaction, not yet written.
                async with sessions.begin() as other:
                    line = await repository.get_timeline(other, "lr-3")
                    assert line is not None and line.version == 1
                # The ticket's next event in the batch locks its row only, state from the batch.
                assert await repository.lock_ticket_reading_state(holder, "lr-3") is not None
                assert repository.take_prefetched_state(holder, "lr-3") is None

            waiting = await _read_waiting_for_the_lock(sessions, "lr-3")
        state = await asyncio.wait_for(waiting, 10)
    _assert_holder_written(state)


async def test_a_timeline_keeps_a_custom_field_beyond_64_bits(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """The goal write encodes a timeline's document as the JSON columns do
    (``shared.db.json_dumps``), and its read keeps it as the stored text, written back as
    read: a vendor's custom field beyond 64 bits is kept exactly, where orjson alone refused to
    write it (failing the whole batch) and read it back as a float (which the next write
    kept)."""
    line = _timeline("big-1", 1, [[0.0, "s", "open"]])
    line.document = {"id": "big-1", "custom_fields": {"account": 2**70 + 1}}
    async with sessions.begin() as session:
        await repository.write_samples(session, repository.SampleWrites(timeline=line))
    async with sessions.begin() as session:
        # Read back as the bookkeeping reads it, and written again with one more event.
        state = await repository.ticket_state(session, "big-1", with_timers=False)
        assert state.timeline is not None
        assert isinstance(state.timeline.document, str)
        assert json.loads(state.timeline.document)["custom_fields"]["account"] == 2**70 + 1
        state.timeline.events.append([30.0, "a", None])
        await repository.write_samples(session, repository.SampleWrites(timeline=state.timeline))
    async with sessions.begin() as session:
        stored = await repository.get_timeline(session, "big-1")
    assert stored is not None
    assert stored.document["custom_fields"]["account"] == 1180591620717411303425
    assert len(stored.events) == 2
