"""sla's consumer batch keeps its session (``SlaContext.batch_keeps_session``): a ticket the
batch created is neither read nor locked again by its later events, its rows and timers are
written together at the end, and the outcome is the one of handling each event alone; on
SQLite and PostgreSQL."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from services.sla import repository as sla_repository
from services.sla.app import create_app
from services.sla.goals import repository as goal_repository
from services.sla.models import Timer, TrackedTicket
from shared import events as ev
from shared.bus import Message
from shared.runtime import ServiceRuntime
from tests.conftest import EventFeed, statements_sent, without_consumers

T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
S = timedelta(seconds=1)


@dataclass
class Sla:
    runtime: ServiceRuntime
    client: httpx.AsyncClient

    def __post_init__(self) -> None:
        self.feed = EventFeed(self.runtime, lambda _event: "tickets")

    def messages(self, events: list[ev.Event]) -> list[Message]:
        return self.feed.messages(events)

    async def state(self, tag: str) -> dict[str, Any]:
        """The tickets and timers of ``tag``, named without it."""
        async with self.runtime.sessionmaker() as session:
            tickets = await session.scalars(
                select(TrackedTicket).where(TrackedTicket.id.like(f"{tag}-%"))
            )
            timers = await session.scalars(select(Timer).where(Timer.ticket_id.like(f"{tag}-%")))
            found: dict[str, Any] = {}
            for t in tickets:
                found[t.id.removeprefix(tag)] = (
                    t.status, t.priority, t.assignee_id, t.version, t.policy_id,
                    t.agent_replies, t.replies_before_solve, t.reopens, t.solved_at,
                )  # fmt: skip
            for m in timers:
                found[f"{m.ticket_id.removeprefix(tag)} {m.metric} {m.cycle}"] = (
                    m.status, m.due_at, m.met_at, m.paused_at, m.consumed_seconds,
                    m.paused_seconds, m.segment_started_at, m.next_fire_at, m.target_minutes,
                )  # fmt: skip
            return found


@pytest.fixture
async def sla(either_database: str) -> AsyncIterator[Sla]:
    async with without_consumers(create_app, either_database) as (runtime, client):
        yield Sla(runtime, client)


def _ticket_events(ticket: str, n: int) -> list[ev.Event]:
    """One ticket as router reports it: created, assigned, a customer message, waiting on the
    customer (a pause), open again, an agent reply, solved; its creation repeated in between
    with its old snapshot."""
    base = {
        "id": ticket, "source": "api", "external_id": ticket, "subject": "parcel",
        "status": "open", "priority": "high" if n % 2 else "normal", "channel": "email",
        "requester": {"id": f"r{n}"}, "created_at": T0 + n * S,
    }  # fmt: skip
    version = 0

    def snap(at: datetime, **changes: Any) -> ev.TicketSnapshot:
        nonlocal version
        version += 1
        base.update(changes)
        return ev.TicketSnapshot.model_validate({**base, "updated_at": at, "version": version})

    def message(at: datetime, author: str) -> ev.TicketMessageAdded:
        info = ev.MessageInfo(id=f"{ticket}-{author}-{at}", author=author, created_at=at)
        return ev.TicketMessageAdded(ticket=snap(at), message=info)

    created = ev.TicketCreated(ticket=snap(T0 + n * S))
    return [
        created,
        ev.TicketAssigned(ticket=snap(T0 + 20 * S, assignee_id="ann"), reason="least_loaded"),
        message(T0 + 60 * S, "customer"),
        ev.TicketStatusChanged(ticket=snap(T0 + 90 * S, status="pending"), previous_status="open"),
        ev.TicketStatusChanged(ticket=snap(T0 + 600 * S, status="open"), previous_status="pending"),
        created,  # an old snapshot again: changes nothing
        message(T0 + 700 * S, "agent"),
        ev.TicketSolved(ticket=snap(T0 + 900 * S, status="solved", solved_at=T0 + 900 * S)),
    ]  # fmt: skip


def _stream(tag: str, tickets: int) -> list[ev.Event]:
    """``tickets`` tickets' events, interleaved as one partition holds them."""
    per_ticket = [_ticket_events(f"{tag}-{n}", n) for n in range(tickets)]
    return [event for step in zip(*per_ticket, strict=True) for event in step]


async def test_a_batch_ends_as_one_event_at_a_time_does(sla: Sla) -> None:
    for message in sla.messages(_stream("one", 3)):
        await sla.runtime.handle_message(message)
    await sla.runtime.handle_batch(sla.messages(_stream("batch", 3)))

    single, batch = await sla.state("one"), await sla.state("batch")
    assert batch == single
    assert len(single) == 3 + 3 * 2  # three tickets, each with first response and resolution
    assert single["-0 first_response 0"][0] == "met"
    assert single["-1 resolution 0"][0] == "met"


async def test_a_batch_writes_its_new_tickets_and_timers_together(sla: Sla) -> None:
    with statements_sent(sla.runtime) as sent:
        await sla.runtime.handle_batch(sla.messages(_stream("new", 5)))

    def inserts(table: str) -> list[int]:
        # sla.<table> on PostgreSQL, main.<table> on SQLite
        into = re.compile(rf"INSERT INTO \w+\.{table} ")
        return [count for statement, count in sent if into.match(statement)]

    ticket_inserts, timer_inserts = inserts("tickets"), inserts("timers")
    # The first ticket is written when the batch first reads its policies; the others at the end.
    assert sum(ticket_inserts) == 5 and len(ticket_inserts) <= 2, sent
    assert sum(timer_inserts) == 5 * 2 and len(timer_inserts) <= 2, sent
    # Their later events read neither the tickets nor their timers again.
    reads = [s for s, _ in sent if s.startswith("SELECT") and "timers" in s.split(" FROM ")[-1]]
    assert reads == []
    state = await sla.state("new")
    assert {state[f"-{n}"][0] for n in range(5)} == {"solved"}


async def test_a_batch_locks_no_ticket_it_creates(sla: Sla) -> None:
    with statements_sent(sla.runtime) as sent:
        await sla.runtime.handle_batch(sla.messages(_stream("fresh", 4)))

    # One read for the whole batch found the tickets new: none is read or locked one by one.
    assert [s for s, _ in sent if "FOR UPDATE" in s] == []
    assert len([s for s, _ in sent if s.startswith("SELECT") and "tickets.id" in s]) == 1


async def test_a_ticket_created_elsewhere_meanwhile_fails_the_batch_not_the_ticket(
    sla: Sla, monkeypatch: pytest.MonkeyPatch
) -> None:
    created, assigned, *_ = _ticket_events("race-0", 0)
    await sla.runtime.handle_message(sla.messages([created])[0])

    # As if the batch had read before another transaction created the ticket: it inserts the
    # ticket again, the key refuses it, and the whole batch is undone...
    async def stale(_session: Any, _ids: Any) -> set[str]:
        return set()

    real = goal_repository.existing_reading_new_state

    async def stale_with_goals(session: Any, ids: Any) -> set[str]:
        await real(session, ids)  # (what the goal bookkeeping reads with it stays true)
        return set()

    monkeypatch.setattr(sla_repository, "existing_ticket_ids", stale)
    monkeypatch.setattr(goal_repository, "existing_reading_new_state", stale_with_goals)
    messages = sla.messages([assigned])
    with pytest.raises(IntegrityError):
        await sla.runtime.handle_batch(messages)
    # ...for the bus to hand its events over one at a time, which read the row.
    await sla.runtime.handle_message(messages[0])
    assert (await sla.state("race"))["-0"][2] == "ann"
