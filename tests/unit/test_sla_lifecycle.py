"""Timer life cycle on SQLite and the in-memory bus, driven by router's events and a fake clock."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import event, select

from services.sla.app import create_app
from services.sla.models import outbox
from services.sla.scheduler import fire_once
from shared import events as ev
from shared.bus import MemoryBus, Message
from shared.migrate import upgrade
from shared.runtime import ServiceRuntime
from tests.conftest import make_settings, running

T0 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)  # a Monday, 08:00 in London (GMT)


class FakeClock:
    """Time moves only when the test says so."""

    def __init__(self, now: datetime) -> None:
        self.current = now

    def now(self) -> datetime:
        return self.current

    async def sleep(self, seconds: float) -> None:
        self.current += timedelta(seconds=max(0.0, seconds))
        await asyncio.sleep(0)

    def advance(self, **delta: float) -> None:
        self.current += timedelta(**delta)


@dataclass
class Sla:
    client: httpx.AsyncClient
    runtime: ServiceRuntime
    clock: FakeClock
    versions: dict[str, int] = field(default_factory=dict)

    def snapshot(self, ticket_id: str, **changes: Any) -> ev.TicketSnapshot:
        version = self.versions.get(ticket_id, 0) + 1
        self.versions[ticket_id] = version
        values: dict[str, Any] = {
            "id": ticket_id,
            "source": "api",
            "external_id": ticket_id.split(":", 1)[1],
            "subject": "Printer on fire",
            "status": "open",
            "priority": "normal",
            "channel": "email",
            "requester": {"id": "r1", "email": "pat@example.com"},
            "created_at": T0,
            "updated_at": self.clock.now(),
            "version": version,
        }
        values.update(changes)
        return ev.TicketSnapshot.model_validate(values)

    async def deliver(self, event: ev.Event, *, event_id: str | None = None) -> str:
        key, value, _headers = ev.encode(event, source="router", event_id=event_id)
        message = Message(topic="tickets", partition=0, offset=0, key=key, value=value)
        await self.runtime.handle_message(message)
        return ev.decode(value).id

    async def emitted(self, ticket_id: str) -> list[tuple[str, dict[str, Any]]]:
        async with self.runtime.sessionmaker() as session:
            rows = (
                await session.execute(
                    select(outbox.c.value).where(outbox.c.key == ticket_id).order_by(outbox.c.id)
                )
            ).all()
        envelopes = [ev.decode(row.value) for row in rows]
        return [(e.type, e.data) for e in envelopes]

    async def timers(self, ticket_id: str) -> dict[str, dict[str, Any]]:
        response = await self.client.get(f"/v1/tickets/{ticket_id}/sla")
        assert response.status_code == 200, response.text
        return {t["metric"]: t for t in response.json()["timers"]}


@pytest.fixture
async def sla(tmp_path: Path) -> AsyncIterator[Sla]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'tf.db'}"
    await asyncio.to_thread(upgrade, "sla", url)
    clock = FakeClock(T0)
    bus = MemoryBus()
    await bus.start()
    app = create_app(make_settings(url), bus=bus, clock=clock)
    async with running(app) as client:
        # ``Sla.emitted`` reads what sla queued in its outbox, which the relay would publish
        # and take off the table.
        await app.state.runtime.relay.stop()
        yield Sla(client, app.state.runtime, clock)
    await bus.stop()


def parse(value: str) -> datetime:
    return datetime.fromisoformat(value)


async def test_default_policy_24x7_with_breach_once(sla: Sla) -> None:
    ticket = "api:default-1"
    await sla.deliver(ev.TicketCreated(ticket=sla.snapshot(ticket, priority="urgent")))
    timers = await sla.timers(ticket)
    assert parse(timers["first_response"]["due_at"]) == T0 + timedelta(minutes=15)
    assert parse(timers["resolution"]["due_at"]) == T0 + timedelta(hours=4)

    at_risk = (await sla.client.get("/v1/at-risk", params={"within_minutes": 20})).json()
    assert [(r["ticket_id"], r["metric"]) for r in at_risk["items"]] == [(ticket, "first_response")]
    assert at_risk["items"][0]["remaining_seconds"] == 15 * 60

    sla.clock.advance(minutes=15)
    await fire_once(sla.runtime)
    await fire_once(sla.runtime)
    types = [t for t, _ in await sla.emitted(ticket)]
    assert types.count("sla.warning") == 1  # 75 % of 15 min, fired late with the breach
    assert types.count("sla.breached") == 1
    breach = next(d for t, d in await sla.emitted(ticket) if t == "sla.breached")
    assert breach["metric"] == "first_response" and breach["late"] is False
    assert (await sla.timers(ticket))["first_response"]["status"] == "breached"
    breaches = (
        await sla.client.get(
            "/v1/breaches", params={"metric": "first_response", "priority": "urgent"}
        )
    ).json()["items"]
    assert [b["ticket_id"] for b in breaches] == [ticket]
    assert (await sla.client.get("/v1/breaches", params={"priority": "low"})).json()["items"] == []
    naive = await sla.client.get("/v1/breaches", params={"from": "2026-11-23T08:00:00"})
    assert naive.status_code == 422

    # Router emits updated + solved for one change (same snapshot); a redelivery under a new id
    # changes nothing either: each timer is met once.
    solved = sla.snapshot(ticket, priority="urgent", status="solved", solved_at=sla.clock.now())
    await sla.deliver(ev.TicketUpdated(ticket=solved, changes={"status": ["open", "solved"]}))
    await sla.deliver(ev.TicketSolved(ticket=solved))
    await sla.deliver(ev.TicketSolved(ticket=solved))
    met = [d["metric"] for t, d in await sla.emitted(ticket) if t == "sla.met"]
    assert sorted(met) == ["first_response", "resolution"]


async def test_a_reply_after_the_due_instant_is_a_breach_though_the_scheduler_had_not_fired(
    sla: Sla,
) -> None:
    """The scheduler fires a breach when it next looks (about once a second; after an outage,
    once it has caught up). A reply consumed after the due instant but before that is still
    late: the timer is breached, its breach announced then (flagged late), and met as
    breached; nothing escalates for it."""
    ticket = "api:late-reply-1"
    await sla.deliver(ev.TicketCreated(ticket=sla.snapshot(ticket, priority="urgent")))
    sla.clock.advance(minutes=40)  # 15 minutes were allowed; the scheduler never ran
    reply_at = T0 + timedelta(minutes=30)
    message = ev.MessageInfo(id="m1", author="agent", created_at=reply_at)
    await sla.deliver(ev.TicketMessageAdded(ticket=sla.snapshot(ticket), message=message))
    emitted = await sla.emitted(ticket)
    assert [t for t, _ in emitted if t.startswith("sla.")] == [
        "sla.started", "sla.started", "sla.breached", "sla.met"
    ]  # fmt: skip
    breach = next(d for t, d in emitted if t == "sla.breached")
    assert parse(breach["due_at"]) == T0 + timedelta(minutes=15)
    assert breach["late"] is True
    met = next(d for t, d in emitted if t == "sla.met")
    assert met["breached"] is True
    first = (await sla.timers(ticket))["first_response"]
    assert first["status"] == "breached"
    assert parse(first["breached_at"]) == T0 + timedelta(minutes=15)
    # A reply within the target stays met.
    other = "api:late-reply-2"
    await sla.deliver(ev.TicketCreated(ticket=sla.snapshot(other, priority="urgent")))
    on_time = ev.MessageInfo(id="m2", author="agent", created_at=T0 + timedelta(minutes=15))
    await sla.deliver(ev.TicketMessageAdded(ticket=sla.snapshot(other), message=on_time))
    assert (await sla.timers(other))["first_response"]["status"] == "met"
    await fire_once(sla.runtime)
    assert "sla.breached" not in [t for t, _ in await sla.emitted(other)]


async def test_business_hours_pause_priority_reopen_and_escalation(sla: Sla) -> None:
    calendar = await sla.client.post(
        "/v1/calendars",
        json={
            "name": "London office",
            "timezone": "Europe/London",
            "hours": {d: [["09:00", "12:00"], ["13:00", "17:00"]] for d in ("mon", "tue", "wed")},
            "holidays": ["2026-11-24"],
        },
    )
    assert calendar.status_code == 201, calendar.text
    calendar_id = calendar.json()["id"]
    policy = await sla.client.post(
        "/v1/sla-policies",
        json={
            "name": "Email",
            "position": 1,
            "conditions": {"all": [{"field": "channel", "op": "eq", "value": "email"}]},
            "targets": [
                {"priority": p, "metric": m, "minutes": mins, "calendar_id": calendar_id}
                for p, m, mins in [
                    ("normal", "first_response", 240),
                    ("normal", "resolution", 600),
                    ("high", "first_response", 60),
                    ("high", "resolution", 300),
                ]
            ],
            "warn_at": [0.5],
            # First response pauses only when a policy says so, per metric.
            "pause_statuses": {
                "first_response": ["pending", "on_hold"],
                "resolution": ["pending", "on_hold"],
            },
            "escalations": [
                {
                    "metric": "first_response",
                    "level": 1,
                    "when": "warning",
                    "actions": {"notify": ["lead@example.com"]},
                },
                {
                    "metric": "first_response",
                    "level": 2,
                    "when": "breach",
                    "actions": {"set_group": "tier2", "set_priority": "urgent"},
                },
            ],
        },
    )
    assert policy.status_code == 201, policy.text
    policy_id = policy.json()["id"]

    ticket = "api:hours-1"
    # Arrives Monday 08:00, before opening: the clock starts at 09:00.
    created = ev.TicketCreated(ticket=sla.snapshot(ticket))
    created_id = await sla.deliver(created)
    await sla.deliver(created, event_id=created_id)  # redelivery: no effect
    state = (await sla.client.get(f"/v1/tickets/{ticket}/sla")).json()
    assert state["policy_id"] == policy_id
    timers = {t["metric"]: t for t in state["timers"]}
    assert parse(timers["first_response"]["due_at"]) == datetime(2026, 11, 23, 14, tzinfo=UTC)

    # 10:00 (1 business hour used): pending pauses both timers.
    sla.clock.current = datetime(2026, 11, 23, 10, tzinfo=UTC)
    await sla.deliver(
        ev.TicketStatusChanged(
            ticket=sla.snapshot(ticket, status="pending"), previous_status="open"
        )
    )
    timers = await sla.timers(ticket)
    assert timers["first_response"]["status"] == "paused"
    assert timers["first_response"]["remaining_seconds"] == 3 * 3600
    # 11:00: back to open, one paused hour recorded; due moves an hour later (15:00).
    sla.clock.current = datetime(2026, 11, 23, 11, tzinfo=UTC)
    await sla.deliver(
        ev.TicketStatusChanged(
            ticket=sla.snapshot(ticket, status="open"), previous_status="pending"
        )
    )
    timers = await sla.timers(ticket)
    assert timers["first_response"]["paused_seconds"] == 3600
    assert parse(timers["first_response"]["due_at"]) == datetime(2026, 11, 23, 15, tzinfo=UTC)

    # 11:30: high priority, 60 min target; 1.5 business hours already used, so it is overdue at
    # once; resolution (300 min, 1.5 h used) is due 3.5 business hours later: 16:00.
    sla.clock.current = datetime(2026, 11, 23, 11, 30, tzinfo=UTC)
    await sla.deliver(
        ev.TicketPrioritized(
            ticket=sla.snapshot(ticket, priority="high"), previous_priority="normal", reason="vip"
        )
    )
    timers = await sla.timers(ticket)
    assert parse(timers["first_response"]["due_at"]) == datetime(2026, 11, 23, 11, 30, tzinfo=UTC)
    assert parse(timers["resolution"]["due_at"]) == datetime(2026, 11, 23, 16, tzinfo=UTC)
    await fire_once(sla.runtime)
    await fire_once(sla.runtime)
    emitted = await sla.emitted(ticket)
    types = [t for t, _ in emitted]
    assert types.count("sla.breached") == 1
    assert types.count("sla.warning") == 1
    levels = [d["level"] for t, d in emitted if t == "sla.escalated"]
    assert levels == [1, 2]
    escalation = next(d for t, d in emitted if t == "sla.escalated" and d["level"] == 2)
    assert escalation["actions"] == {"set_group": "tier2", "set_priority": "urgent"}

    # Agent replies, then solves at 12:00 (2 business hours of resolution used in total)...
    await sla.deliver(
        ev.TicketMessageAdded(
            ticket=sla.snapshot(ticket, priority="high"),
            message=ev.MessageInfo(id="m1", author="agent", created_at=sla.clock.now()),
        )
    )
    sla.clock.current = datetime(2026, 11, 23, 12, tzinfo=UTC)
    await sla.deliver(
        ev.TicketSolved(
            ticket=sla.snapshot(ticket, priority="high", status="solved", solved_at=sla.clock.now())
        )
    )
    timers = await sla.timers(ticket)
    assert timers["resolution"]["status"] == "met"
    assert timers["first_response"]["status"] == "breached"
    # ...and the customer reopens on Wednesday 09:00 (Tuesday is a holiday).
    sla.clock.current = datetime(2026, 11, 25, 9, tzinfo=UTC)
    await sla.deliver(
        ev.TicketReopened(
            ticket=sla.snapshot(ticket, priority="high", status="open"), previous_status="solved"
        )
    )
    timers = await sla.timers(ticket)
    assert timers["resolution"]["status"] == "running"
    # Used before the solve: 09-10 and 11-12 = 2 h; 3 h left: 09:00-12:00.
    assert parse(timers["resolution"]["due_at"]) == datetime(2026, 11, 25, 12, tzinfo=UTC)


async def test_next_response_starts_on_customer_message(sla: Sla) -> None:
    ticket = "api:next-1"
    await sla.deliver(ev.TicketCreated(ticket=sla.snapshot(ticket, channel="chat")))
    timers = await sla.timers(ticket)
    assert parse(timers["first_response"]["due_at"]) == T0 + timedelta(minutes=1)
    sla.clock.advance(seconds=30)
    reply = ev.MessageInfo(id="a1", author="agent", created_at=sla.clock.now())
    await sla.deliver(
        ev.TicketMessageAdded(ticket=sla.snapshot(ticket, channel="chat"), message=reply)
    )
    sla.clock.advance(seconds=30)
    question = ev.MessageInfo(id="c1", author="customer", created_at=sla.clock.now())
    await sla.deliver(
        ev.TicketMessageAdded(ticket=sla.snapshot(ticket, channel="chat"), message=question)
    )
    timers = await sla.timers(ticket)
    assert timers["first_response"]["status"] == "met"
    assert timers["next_response"]["status"] == "running"
    assert parse(timers["next_response"]["due_at"]) == sla.clock.now() + timedelta(minutes=2)
    # A stale snapshot (older version) changes nothing.
    stale = sla.snapshot(ticket, channel="chat", status="pending").model_copy(update={"version": 1})
    await sla.deliver(ev.TicketStatusChanged(ticket=stale, previous_status="open"))
    assert (await sla.timers(ticket))["next_response"]["status"] == "running"


async def test_each_event_reads_its_ticket_once_and_its_timers_at_most_once(sla: Sla) -> None:
    """One read locks the ticket and brings the goal state along; the ticket's timers are read
    once per event (none for a new ticket), however many metrics the event touches."""
    statements: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(" ".join(statement.split()))

    def reads(table: str) -> list[str]:
        return [s for s in statements if s.startswith(("SELECT", "WITH")) and table in s]

    ticket = "api:reads-1"
    engine = sla.runtime.engine.sync_engine
    event.listen(engine, "before_cursor_execute", seen)
    try:
        await sla.deliver(ev.TicketCreated(ticket=sla.snapshot(ticket, channel="chat")))
        assert reads("timers.ticket_id =") == []
        (ticket_read,) = reads("tickets.id =")
        assert "ticket_timelines" in ticket_read and "ticket_samples" in ticket_read
        assert len(reads("ticket_timelines")) == 1
        statements.clear()
        sla.clock.advance(seconds=30)
        reply = ev.MessageInfo(id="a1", author="agent", created_at=sla.clock.now())
        await sla.deliver(
            ev.TicketMessageAdded(ticket=sla.snapshot(ticket, channel="chat"), message=reply)
        )
        assert len(reads("timers.ticket_id =")) == 1
        assert len(reads("tickets.id =")) == 1
        assert len(reads("ticket_timelines")) == 1
        statements.clear()
        await sla.deliver(
            ev.TicketSolved(
                ticket=sla.snapshot(
                    ticket, channel="chat", status="solved", solved_at=sla.clock.now()
                )
            )
        )
        assert len(reads("timers.ticket_id =")) == 1
        assert len(reads("tickets.id =")) == 1
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    timers = await sla.timers(ticket)
    assert timers["first_response"]["status"] == "met"
    assert timers["resolution"]["status"] == "met"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"timezone": "Mars/Base"}, "timezone"),
        ({"hours": {"mon": [["12:00", "09:00"]]}}, "hours.mon.0"),
        ({"hours": {"mon": [["09:00", "12:00"], ["11:00", "13:00"]]}}, "hours.mon"),
        ({"hours": {"funday": [["09:00", "12:00"]]}}, "hours.funday"),
    ],
)
async def test_bad_calendars_are_422(sla: Sla, body: dict[str, Any], field: str) -> None:
    payload = {"name": "x", "timezone": "UTC", "hours": {"mon": [["09:00", "17:00"]]}} | body
    response = await sla.client.post("/v1/calendars", json=payload)
    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["field"] == field


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"targets": [{"priority": "low", "metric": "resolution", "minutes": 0}]}, "minutes"),
        ({"warn_at": [1.0]}, "warn_at"),
        ({"warn_at": [0]}, "warn_at"),
        (
            {"conditions": {"all": [{"field": "shoe_size", "op": "eq", "value": 1}]}},
            "conditions",
        ),
        (
            {
                "targets": [
                    {
                        "priority": "low",
                        "metric": "resolution",
                        "minutes": 5,
                        "calendar_id": "nope",
                    }
                ]
            },
            "calendar_id",
        ),
    ],
)
async def test_bad_policies_are_422(sla: Sla, change: dict[str, Any], field: str) -> None:
    payload = {
        "name": "p",
        "targets": [{"priority": "low", "metric": "resolution", "minutes": 60}],
    } | change
    response = await sla.client.post("/v1/sla-policies", json=payload)
    assert response.status_code == 422, response.text
    assert any(field in d["field"] for d in response.json()["error"]["details"])


async def test_policy_crud_and_pages(sla: Sla) -> None:
    ids = []
    for position in range(3):
        created = await sla.client.post(
            "/v1/sla-policies",
            json={
                "name": f"p{position}",
                "position": position,
                "targets": [{"priority": "low", "metric": "resolution", "minutes": 60}],
            },
        )
        assert created.status_code == 201, created.text
        ids.append(created.json()["id"])
    first = (await sla.client.get("/v1/sla-policies?limit=2")).json()
    assert [p["id"] for p in first["items"]] == ids[:2]
    second = (
        await sla.client.get(f"/v1/sla-policies?limit=2&cursor={first['next_cursor']}")
    ).json()
    assert [p["id"] for p in second["items"]] == ids[2:] and second["next_cursor"] is None
    replaced = await sla.client.put(
        f"/v1/sla-policies/{ids[0]}",
        json={
            "name": "renamed",
            "targets": [{"priority": "low", "metric": "resolution", "minutes": 90}],
        },
    )
    assert replaced.json()["name"] == "renamed"
    assert (await sla.client.delete(f"/v1/sla-policies/{ids[0]}")).status_code == 204
    assert (await sla.client.get(f"/v1/sla-policies/{ids[0]}")).status_code == 404


async def test_calendar_in_use_cannot_be_deleted(sla: Sla) -> None:
    calendar = await sla.client.post(
        "/v1/calendars",
        json={"name": "c", "timezone": "UTC", "hours": {"mon": [["09:00", "17:00"]]}},
    )
    calendar_id = calendar.json()["id"]
    await sla.client.post(
        "/v1/sla-policies",
        json={
            "name": "p",
            "targets": [
                {
                    "priority": "low",
                    "metric": "resolution",
                    "minutes": 60,
                    "calendar_id": calendar_id,
                }
            ],
        },
    )
    assert (await sla.client.delete(f"/v1/calendars/{calendar_id}")).status_code == 409


async def test_demo_seed_is_idempotent_and_applies(sla: Sla) -> None:
    from services.sla.demo import seed

    await seed(sla.client, "http://testserver")
    await seed(sla.client, "http://testserver")
    calendars = (await sla.client.get("/v1/calendars")).json()["items"]
    policies = (await sla.client.get("/v1/sla-policies")).json()["items"]
    assert len(calendars) == 1 and len(policies) == 2
    ticket = "api:demo-1"
    await sla.deliver(ev.TicketCreated(ticket=sla.snapshot(ticket)))  # Monday 08:00 UTC, email
    timers = await sla.timers(ticket)
    # normal: 4 business hours from Monday 09:00 London, with the lunch break: 14:00.
    assert parse(timers["first_response"]["due_at"]) == datetime(2026, 11, 23, 14, tzinfo=UTC)


async def test_sla_report(sla: Sla) -> None:
    from services.sla.reports import percentile

    assert percentile([], 0.5) is None
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.5
    assert percentile([float(i) for i in range(11)], 0.9) == 9.0

    for name, reopen in (("api:report-1", True), ("api:report-2", False)):
        sla.clock.current = T0
        await sla.deliver(ev.TicketCreated(ticket=sla.snapshot(name, priority="high")))
        sla.clock.advance(minutes=10 if reopen else 30)
        reply = ev.MessageInfo(id=f"{name}-r", author="agent", created_at=sla.clock.now())
        await sla.deliver(
            ev.TicketMessageAdded(ticket=sla.snapshot(name, priority="high"), message=reply)
        )
        sla.clock.advance(minutes=20)
        solved = sla.snapshot(name, priority="high", status="solved", solved_at=sla.clock.now())
        await sla.deliver(ev.TicketSolved(ticket=solved))
        if reopen:
            reopened = sla.snapshot(name, priority="high", status="open")
            await sla.deliver(ev.TicketReopened(ticket=reopened, previous_status="solved"))
    response = await sla.client.get(
        "/v1/reports/sla", params={"from": T0.isoformat(), "group_by": "priority"}
    )
    assert response.status_code == 200, response.text
    (high,) = response.json()["groups"]
    assert high["group"] == "high" and high["tickets"] == 2
    assert high["compliance_pct"]["first_response"] == 100.0
    assert high["first_response_minutes"] == {"median": 20.0, "p90": 28.0}
    assert high["first_response_seconds"] == {"median": 1200.0, "p90": 1680.0}
    assert high["resolution_seconds"] == {"median": 3000.0, "p90": 3000.0}  # one met
    assert high["replies_before_resolution"] == 1.0
    assert high["first_contact_resolution_pct"] == 50.0
    assert high["reopen_pct"] == 50.0
    assert high["escalation_pct"] == 0.0
    bad = await sla.client.get("/v1/reports/sla", params={"group_by": "planet"})
    assert bad.status_code == 422


async def test_first_response_never_pauses_by_default_and_customer_reply_reopens(
    sla: Sla,
) -> None:
    """Pending before anyone answered still waits for a first reply; a customer's reply to a
    solved ticket starts next response, resumes resolution and counts as a reopen."""
    ticket = "api:reopen-1"
    sla.clock.current = T0
    await sla.deliver(ev.TicketCreated(ticket=sla.snapshot(ticket)))
    sla.clock.advance(minutes=5)
    pending = sla.snapshot(ticket, status="pending")
    await sla.deliver(ev.TicketStatusChanged(ticket=pending, previous_status="open"))
    timers = await sla.timers(ticket)
    assert timers["first_response"]["status"] == "running"
    assert timers["resolution"]["status"] == "paused"

    sla.clock.advance(minutes=5)
    reply = ev.MessageInfo(id="a1", author="agent", created_at=sla.clock.now())
    await sla.deliver(
        ev.TicketMessageAdded(ticket=sla.snapshot(ticket, status="pending"), message=reply)
    )
    sla.clock.advance(minutes=5)
    solved = sla.snapshot(ticket, status="solved", solved_at=sla.clock.now())
    await sla.deliver(ev.TicketSolved(ticket=solved))
    assert (await sla.timers(ticket))["resolution"]["status"] == "met"

    # Router's order for a customer's reply to a solved ticket: the message (still solved),
    # then the reopen (open), all with the ticket's snapshot.
    sla.clock.advance(minutes=5)
    said = ev.MessageInfo(id="c1", author="customer", created_at=sla.clock.now())
    await sla.deliver(
        ev.TicketMessageAdded(
            ticket=sla.snapshot(ticket, status="solved", solved_at=solved.solved_at),
            message=said,
        )
    )
    reopened = sla.snapshot(ticket, status="open")
    await sla.deliver(ev.TicketStatusChanged(ticket=reopened, previous_status="solved"))
    await sla.deliver(ev.TicketReopened(ticket=reopened, previous_status="solved"))
    timers = await sla.timers(ticket)
    assert timers["next_response"]["status"] == "running"
    assert timers["resolution"]["status"] == "running"

    response = await sla.client.get(
        "/v1/reports/sla", params={"from": T0.isoformat(), "group_by": "priority"}
    )
    (normal,) = response.json()["groups"]
    assert normal["reopen_pct"] == 100.0


async def test_pause_statuses_per_metric_are_validated(sla: Sla) -> None:
    body = {
        "name": "Per metric",
        "targets": [{"priority": "normal", "metric": "resolution", "minutes": 60}],
        "pause_statuses": {"next_response": ["pending"], "resolution": ["solved"]},
    }
    refused = await sla.client.post("/v1/sla-policies", json=body)
    assert refused.status_code == 422
    body["pause_statuses"] = {"next_response": ["pending"], "resolution": ["on_hold"]}
    created = await sla.client.post("/v1/sla-policies", json=body)
    assert created.status_code == 201, created.text
    assert created.json()["pause_statuses"]["resolution"] == ["on_hold"]
