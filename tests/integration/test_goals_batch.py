"""Goal bookkeeping in sla's consumer batch (``services.sla.goals.repository.BatchGoals``): a
batch holding several events of each ticket keeps each ticket's goal state in the transaction
and writes it once at the end, with the same timelines, samples and day totals as handling the
same events one transaction each; on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import event as sa_event
from sqlalchemy import select

from services.sla.app import create_app
from services.sla.goals import repository
from services.sla.goals.models import GoalBucket, TicketTimeline
from shared import events as ev
from shared.bus import Message
from shared.runtime import ServiceRuntime
from tests.conftest import EventFeed, without_consumers

T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3)
GOALS: list[dict[str, Any]] = [
    {"metric": "first_response_time", "threshold_seconds": 60},
    {"metric": "resolution_time", "threshold_seconds": 1200},
    {"metric": "next_response_time", "threshold_seconds": 300},
    {"metric": "first_contact_resolution"},
    {"metric": "reopen_rate"},
    {"metric": "sla_compliance", "sla_metric": "first_response"},
    {"metric": "csat"},
]


def _topic(event: ev.Event) -> str:
    return "surveys" if isinstance(event, ev.SurveyAnswered) else "tickets"


@dataclass
class Sla:
    runtime: ServiceRuntime
    client: httpx.AsyncClient

    def __post_init__(self) -> None:
        self.feed = EventFeed(self.runtime, _topic)

    def messages(self, events: list[ev.Event]) -> list[Message]:
        return self.feed.messages(events)


@pytest.fixture
async def sla(either_database: str) -> AsyncIterator[Sla]:
    async with without_consumers(create_app, either_database) as (runtime, client):
        yield Sla(runtime, client)


def _stream(tag: str) -> list[ev.Event]:
    """Three chats, their events interleaved by time as one partition would hold them: replies,
    a solve, a reopen and a second solve, an event repeated, a stale snapshot, a survey
    answered before its ticket arrived and one after."""
    versions: dict[str, int] = {}
    states: dict[str, dict[str, Any]] = {}

    def snapshot(ticket: str, at: datetime, **changes: Any) -> ev.TicketSnapshot:
        versions[ticket] = versions.get(ticket, 0) + 1
        state = states.setdefault(
            ticket,
            {
                "id": ticket, "source": "api", "external_id": ticket, "subject": "parcel",
                "status": "open", "priority": "normal", "channel": "chat",
                "requester": {"id": "r"}, "created_at": at,
            },
        )  # fmt: skip
        state.update(changes)
        return ev.TicketSnapshot.model_validate(
            {**state, "updated_at": at, "version": versions[ticket]}
        )

    def message(ticket: str, at: datetime, author: str) -> ev.Event:
        info = ev.MessageInfo(
            id=f"{ticket}-{at.timestamp()}", author=author, public=True, created_at=at
        )
        return ev.TicketMessageAdded(ticket=snapshot(ticket, at), message=info)

    def status(ticket: str, at: datetime, to: str) -> ev.Event:
        previous = states[ticket]["status"]
        if to == "solved":
            return ev.TicketSolved(ticket=snapshot(ticket, at, status=to, solved_at=at))
        return ev.TicketReopened(ticket=snapshot(ticket, at, status=to), previous_status=previous)

    a, b, c = (f"{tag}-{n}" for n in ("a", "b", "c"))
    s = timedelta(seconds=1)
    created_a = ev.TicketCreated(ticket=snapshot(a, T0))
    events: list[ev.Event] = [
        ev.SurveyAnswered(survey_id=f"{c}-s1", ticket_id=c, kind="csat", score=5, answered_at=T0),
        created_a,
        ev.TicketCreated(ticket=snapshot(b, T0 + 5 * s)),
        message(a, T0 + 30 * s, "agent"),
        ev.TicketCreated(ticket=snapshot(c, T0 + 10 * s)),
        message(b, T0 + 200 * s, "agent"),
        message(a, T0 + 120 * s, "customer"),
        created_a,  # stale snapshot: changes nothing
        status(a, T0 + 600 * s, "solved"),
        message(c, T0 + 50 * s, "agent"),
        status(b, T0 + 700 * s, "solved"),
        message(a, T0 + 900 * s, "customer"),
        status(a, T0 + 900 * s, "open"),
        message(a, T0 + 1000 * s, "agent"),
        status(a, T0 + 1500 * s, "solved"),
        status(c, T0 + 2000 * s, "solved"),
        ev.SurveyAnswered(survey_id=f"{a}-s1", ticket_id=a, kind="csat", score=2, answered_at=T0 + 1600 * s),
        message(b, T0 + 800 * s, "customer"),
        status(b, T0 + 800 * s, "open"),
        message(b, T0 + 850 * s, "agent"),
    ]  # fmt: skip
    return events


async def _goal_state(sla: Sla, tag: str) -> dict[str, Any]:
    """Each ticket's timeline and samples, by the ticket's name without ``tag``."""
    async with sla.runtime.sessionmaker() as session:
        lines = await session.scalars(
            select(TicketTimeline).where(TicketTimeline.ticket_id.like(f"{tag}-%"))
        )
        samples = await repository.stored_samples(session, f"{tag}-")
        found: dict[str, Any] = {}
        for line in lines:
            name = line.ticket_id.removeprefix(tag)
            found[f"timeline{name}"] = (line.status, line.priority, line.version, line.events)
        for sample in samples:
            name = sample.ticket_id.removeprefix(tag)
            key = sample.key.replace(tag, "")
            found[f"sample{name} {sample.goal_id} {key}"] = (
                sample.day,
                sample.good,
                sample.bad,
                sample.value,
            )
        return found


async def _totals(sla: Sla) -> tuple[dict[Any, tuple[int, int, int, float]], dict[Any, Any]]:
    """The day totals, and the same totals summed from the samples."""
    async with sla.runtime.sessionmaker() as session:
        buckets = {
            (b.goal_id, b.day): (b.samples, b.good, b.bad, round(b.value_sum, 6))
            for b in await session.scalars(select(GoalBucket))
            if b.samples
        }
        summed: dict[Any, list[Any]] = {}
        for sample in await repository.stored_samples(session):
            total = summed.setdefault((sample.goal_id, sample.day), [0, 0, 0, 0.0])
            total[0] += 1
            total[1] += sample.good
            total[2] += sample.bad
            total[3] += sample.value
        return buckets, {key: (*t[:3], round(t[3], 6)) for key, t in summed.items()}


async def test_a_batch_writes_each_tickets_goal_state_once_with_the_same_figures(sla: Sla) -> None:
    for body in GOALS:
        response = await sla.client.post(
            "/v1/goals",
            json={
                "name": body["metric"],
                "scope": {"channel": ["chat"]},
                "target": 80,
                "period": {"kind": "week"},
                "timezone": "UTC",
                **body,
            },
        )
        assert response.status_code == 201, response.text
    writes: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if "INSERT INTO" in statement and "ticket_timelines" in statement:
            writes.append(statement)

    engine = sla.runtime.engine.sync_engine
    sa_event.listen(engine, "before_cursor_execute", count)
    try:
        for message in sla.messages(_stream("one")):
            await sla.runtime.handle_message(message)
        one_by_one = len(writes)
        writes.clear()
        await sla.runtime.handle_batch(sla.messages(_stream("batch")))
        batched = len(writes)
        writes.clear()
        plain = [e for e in _stream("plain") if not isinstance(e, ev.SurveyAnswered)]
        await sla.runtime.handle_batch(sla.messages(plain))
        without_surveys = len(writes)
    finally:
        sa_event.remove(engine, "before_cursor_execute", count)
    single = await _goal_state(sla, "one")
    batch = await _goal_state(sla, "batch")
    assert batch == single
    assert len([k for k in single if k.startswith("sample")]) >= 10, single
    assert any(" survey:" in k for k in single), single  # both answers counted
    # The timelines written once for the whole batch, in one statement, against once per event
    # that changed one; with survey answers, also before each answer that reads them (the
    # ticket created with an answer already stored, and the answer after the ticket). On
    # PostgreSQL every goal write is the one statement, the answers' own two included.
    assert one_by_one >= 15
    assert without_surveys == 1
    assert batched == (5 if sla.runtime.engine.dialect.name == "postgresql" else 3)
    buckets, summed = await _totals(sla)
    assert buckets == summed


async def test_a_redelivered_batch_changes_nothing(sla: Sla) -> None:
    response = await sla.client.post(
        "/v1/goals",
        json={
            "name": "frt",
            "metric": "first_response_time",
            "threshold_seconds": 60,
            "scope": {"channel": ["chat"]},
            "target": 80,
            "period": {"kind": "week"},
            "timezone": "UTC",
        },
    )
    assert response.status_code == 201, response.text
    messages = sla.messages(_stream("again"))
    await sla.runtime.handle_batch(messages)
    before = (await _goal_state(sla, "again"), await _totals(sla))
    await sla.runtime.handle_batch(messages)  # the same envelopes: the inbox has them all
    await sla.runtime.handle_batch(messages[5:12])
    after = (await _goal_state(sla, "again"), await _totals(sla))
    assert after == before
    assert after[1][0] == after[1][1]
