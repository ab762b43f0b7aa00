"""router's consumer batch reads once for all its events what each would read alone (which
tickets are new, the requesters' previous agents), with the same answers, on SQLite and
PostgreSQL."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from services.router import repository
from services.router.app import create_app
from services.router.models import Ticket
from shared import events as ev
from shared.runtime import ServiceRuntime
from tests.conftest import EventFeed, statements_sent, without_consumers

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


@dataclass
class Router:
    runtime: ServiceRuntime
    client: httpx.AsyncClient

    def __post_init__(self) -> None:
        self.feed = EventFeed(self.runtime, lambda _event: "inbound")

    async def handle(self, events: list[ev.TicketUpsert]) -> None:
        """``events`` as one batch of router's ``inbound`` consumer."""
        await self.runtime.handle_batch(self.feed.messages(list(events)))

    async def put_agent(self, agent_id: str, capacity: int = 10) -> None:
        body = {"name": agent_id, "status": "online", "capacity": {"email": capacity}}
        response = await self.client.put(f"/v1/agents/{agent_id}", json=body)
        assert response.status_code in (200, 201), response.text

    async def tickets(self) -> dict[str, tuple[str, str | None]]:
        """Every ticket's (subject, assignee)."""
        async with self.runtime.sessionmaker() as session:
            rows = await session.execute(select(Ticket.id, Ticket.subject, Ticket.assignee_id))
            return {ticket_id: (subject, agent) for ticket_id, subject, agent in rows}


@pytest.fixture
async def router(either_database: str) -> AsyncIterator[Router]:
    async with without_consumers(create_app, either_database) as (runtime, client):
        yield Router(runtime, client)


def _upsert(
    external_id: str,
    subject: str,
    minutes: int,
    requester: str | None = None,
    assignee: str | None = None,
) -> ev.TicketUpsert:
    return ev.TicketUpsert(
        source="batch",
        external_id=external_id,
        occurred_at=T0 + timedelta(minutes=minutes),
        ticket=ev.InboundTicket(
            subject=subject,
            channel="email",
            requester=ev.Requester(id=requester or f"r-{external_id}"),
            assignee_id=assignee,
        ),
    )


def _count_calls(monkeypatch: pytest.MonkeyPatch, name: str) -> list[tuple[Any, ...]]:
    """Record the arguments (after the session) of each call of ``repository.<name>``."""
    calls: list[tuple[Any, ...]] = []
    original = getattr(repository, name)

    async def counted(session: Any, *args: Any, **options: Any) -> Any:
        calls.append((*args, *options.items()))
        return await original(session, *args, **options)

    monkeypatch.setattr(repository, name, counted)
    return calls


async def test_a_batch_reads_its_new_tickets_once(
    router: Router, monkeypatch: pytest.MonkeyPatch
) -> None:
    await router.handle([_upsert("old", "before", 0)])
    reads = _count_calls(monkeypatch, "existing_ticket_ids")
    gets = _count_calls(monkeypatch, "get_ticket")

    # Two new tickets, the second reported twice in the batch, and an existing one.
    await router.handle(
        [
            _upsert("a", "first", 1),
            _upsert("b", "created", 2),
            _upsert("old", "after", 3),
            _upsert("b", "changed", 4),
        ]
    )

    assert [set(ids) for ids, *_ in reads] == [{"batch:a", "batch:b", "batch:old"}]
    # The new tickets' first events lock nothing; b's second event and the old ticket do.
    locked = [ticket_id for ticket_id, *options in gets if ("for_update", True) in options]
    assert locked == ["batch:old", "batch:b"]
    subjects = {ticket_id: subject for ticket_id, (subject, _) in (await router.tickets()).items()}
    assert subjects == {"batch:a": "first", "batch:b": "changed", "batch:old": "after"}


async def test_a_batch_reads_the_previous_agents_once_and_routes_as_alone(
    router: Router, monkeypatch: pytest.MonkeyPatch
) -> None:
    await router.put_agent("ann")
    await router.handle([_upsert("r1", "earlier", 0, requester="rose")])
    assert (await router.tickets())["batch:r1"][1] == "ann"
    await router.put_agent("bob")  # less loaded from now on
    by_requester = _count_calls(monkeypatch, "previous_agents_by_requester")
    one_by_one = _count_calls(monkeypatch, "previous_agents")

    await router.handle(
        [
            _upsert("r2", "again", 1, requester="rose"),  # back to ann, from the batch's read
            _upsert("s1", "new", 2, requester="sam"),  # nobody before: the least loaded
            # rose's r2 was just assigned in this transaction: read alone, and it counts.
            _upsert("r3", "third", 3, requester="rose"),
        ]
    )

    assert [set(requesters) for requesters, *_ in by_requester] == [{"rose", "sam"}]
    assert [ticket.id for ticket, *_ in one_by_one] == ["batch:r3"]
    assignees = {ticket_id: agent for ticket_id, (_, agent) in (await router.tickets()).items()}
    assert assignees == {"batch:r1": "ann", "batch:r2": "ann", "batch:s1": "bob", "batch:r3": "ann"}


async def test_a_batch_writes_its_new_tickets_together(router: Router) -> None:
    await router.put_agent("ann")
    await router.handle([_upsert("warm", "first", 0)])  # ann's row is known from here on

    with statements_sent(router.runtime) as sent:
        await router.handle([_upsert(f"n{i}", f"new {i}", 1 + i) for i in range(5)])
    into = re.compile(r"INSERT INTO (\w+\.)?tickets ")  # router.tickets, main.tickets on SQLite
    inserts = [rows for statement, rows in sent if into.match(statement)]

    # Routed in memory one after the other, written by the batch's last flush in one go.
    assert inserts == [5]
    assignees = {ticket_id: agent for ticket_id, (_, agent) in (await router.tickets()).items()}
    assert assignees == {"batch:warm": "ann"} | {f"batch:n{i}": "ann" for i in range(5)}


async def test_what_a_batch_holds_back_counts_for_capacity(router: Router) -> None:
    await router.put_agent("ann", capacity=2)

    await router.handle(
        [
            _upsert("t1", "routed", 1),  # to ann, in memory
            _upsert("t2", "assigned at the source", 2, assignee="ann"),  # ann's load read again
            _upsert("t3", "no room left", 3),
        ]
    )

    # Reading ann's load again writes the tickets held back first: t3 finds her full.
    assignees = {ticket_id: agent for ticket_id, (_, agent) in (await router.tickets()).items()}
    assert assignees == {"batch:t1": "ann", "batch:t2": "ann", "batch:t3": None}


async def test_a_batch_locks_its_agents_together_but_no_more_than_it_has_tickets(
    router: Router, monkeypatch: pytest.MonkeyPatch
) -> None:
    for agent in ("a1", "a2", "a3", "a4", "a5", "a6"):
        await router.put_agent(agent)
    locks = _count_calls(monkeypatch, "lock_free_agents")

    await router.handle([_upsert("l1", "first", 1), _upsert("l2", "second", 2)])

    # One statement locks the chosen agent and the next best: two tickets, two agents.
    assert [len(agent_ids) for agent_ids, *_ in locks] == [2]
    assignees = {ticket_id: agent for ticket_id, (_, agent) in (await router.tickets()).items()}
    assert assignees["batch:l1"] != assignees["batch:l2"]  # least loaded, then the other

    locks.clear()
    await router.handle([_upsert(f"m{i}", f"many {i}", 3 + i) for i in range(10)])
    # Every free agent at once when the batch has room for them all.
    assert [len(agent_ids) for agent_ids, *_ in locks] == [6]
    loads: dict[str, int] = {}
    for _, assignee in (await router.tickets()).values():
        assert assignee is not None
        loads[assignee] = loads.get(assignee, 0) + 1
    assert sorted(loads.values()) == [2, 2, 2, 2, 2, 2]  # 12 tickets spread evenly
