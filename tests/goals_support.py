"""Scenarios for service goals, run in both modes (embedded and PostgreSQL + broker).

Each scenario gets a ``Desk``: an HTTP client to sla, a way to deliver router's and survey's
events (through the bus under test), the fake clock and the sla runtime.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx

from services.sla.goals.watch import evaluate_goals
from shared import events as ev
from shared.bus import EventBus, Message
from shared.bus.base import OutgoingMessage
from shared.runtime import ServiceRuntime
from shared.settings import Settings
from tests.conftest import eventually


class FakeClock:
    """Time moves only when the test says so."""

    def __init__(self, now: datetime) -> None:
        self.current = now

    def now(self) -> datetime:
        return self.current

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(min(0.05, max(0.0, seconds)))


@dataclass
class Desk:
    client: httpx.AsyncClient
    runtime: ServiceRuntime
    clock: FakeClock
    bus: EventBus
    settings: Settings
    prefix: str = "api:g"
    pending: list[OutgoingMessage] = field(default_factory=list)
    last_seen: dict[str, Any] = field(default_factory=dict)
    seen: list[ev.Envelope] = field(default_factory=list)
    versions: dict[str, int] = field(default_factory=dict)
    state: dict[str, dict[str, Any]] = field(default_factory=dict)

    async def publish(self, topic: str, event: ev.Event, event_id: str | None) -> str:
        """Queue an event as its producer would publish it; ``flush`` sends the queue."""
        event_id = event_id or ev.new_event_id()
        source = "survey" if topic == "surveys" else "router"
        key, value, headers = ev.encode(event, source=source, event_id=event_id)
        self.pending.append(OutgoingMessage(self.settings.topic(topic), key, value, headers))
        return event_id

    async def flush(self) -> None:
        pending, self.pending = self.pending, []
        for start in range(0, len(pending), 500):
            await self.bus.publish_batch(pending[start : start + 500])

    def snapshot(self, ticket_id: str, at: datetime, **changes: Any) -> ev.TicketSnapshot:
        version = self.versions.get(ticket_id, 0) + 1
        self.versions[ticket_id] = version
        state = self.state.setdefault(
            ticket_id,
            {
                "id": ticket_id,
                "source": "api",
                "external_id": ticket_id.split(":", 1)[1],
                "subject": "Where is my parcel?",
                "status": "open",
                "priority": "normal",
                "channel": "chat",
                "requester": {"id": "r1"},
                "created_at": at,
            },
        )
        state.update(changes)
        return ev.TicketSnapshot.model_validate({**state, "updated_at": at, "version": version})

    async def created(self, ticket_id: str, at: datetime, **fields: Any) -> str:
        return await self.publish(
            "tickets", ev.TicketCreated(ticket=self.snapshot(ticket_id, at, **fields)), None
        )

    async def message(
        self, ticket_id: str, at: datetime, author: str = "agent", *, event_id: str | None = None
    ) -> str:
        event = ev.TicketMessageAdded(
            ticket=self.snapshot(ticket_id, at),
            message=ev.MessageInfo.model_validate(
                {
                    "id": f"{ticket_id}-{at.timestamp()}",
                    "author": author,
                    "public": True,
                    "created_at": at,
                }
            ),
        )
        return await self.publish("tickets", event, event_id)

    async def status(self, ticket_id: str, at: datetime, status: str) -> str:
        previous = self.state[ticket_id]["status"]
        changes: dict[str, Any] = {"status": status}
        if status == "solved":
            changes["solved_at"] = at
        snapshot = self.snapshot(ticket_id, at, **changes)
        event: ev.Event
        if status == "solved":
            event = ev.TicketSolved(ticket=snapshot)
        elif previous in ("solved", "closed"):
            event = ev.TicketReopened(ticket=snapshot, previous_status=previous)
        else:
            event = ev.TicketStatusChanged(ticket=snapshot, previous_status=previous)
        return await self.publish("tickets", event, None)

    async def solved_as_router(self, ticket_id: str, at: datetime) -> None:
        """A solve as router announces it: ``ticket.updated``, ``ticket.status_changed`` and
        ``ticket.solved``, one snapshot (``services.router.service.apply_changes``)."""
        previous = self.state[ticket_id]["status"]
        snapshot = self.snapshot(ticket_id, at, status="solved", solved_at=at)
        changes = {"status": [previous, "solved"]}
        await self.publish("tickets", ev.TicketUpdated(ticket=snapshot, changes=changes), None)
        changed = ev.TicketStatusChanged(ticket=snapshot, previous_status=previous)
        await self.publish("tickets", changed, None)
        await self.publish("tickets", ev.TicketSolved(ticket=snapshot), None)

    async def answered(
        self,
        ticket_id: str,
        survey_id: str,
        kind: str,
        score: int,
        at: datetime,
        *,
        event_id: str | None = None,
    ) -> str:
        event = ev.SurveyAnswered(
            survey_id=survey_id,
            ticket_id=ticket_id,
            kind=kind,
            score=score,
            answered_at=at,
        )
        return await self.publish("surveys", event, event_id)

    async def goal(self, **body: Any) -> dict[str, Any]:
        response = await self.client.post("/v1/goals", json=body)
        assert response.status_code == 201, response.text
        return dict(response.json())

    async def attainment(self, goal_id: str, at: datetime | None = None) -> dict[str, Any]:
        params = {"at": at.isoformat()} if at else {}
        response = await self.client.get(f"/v1/goals/{goal_id}/attainment", params=params)
        assert response.status_code == 200, response.text
        return dict(response.json())

    async def settled(
        self, goal_id: str, sample_size: int, at: datetime | None = None
    ) -> dict[str, Any]:
        """Send the queued events, then wait until the goal's period counts ``sample_size``."""
        await self.flush()

        async def probe() -> dict[str, Any] | None:
            found = await self.attainment(goal_id, at)
            self.last_seen = found
            return found if found["sample_size"] == sample_size else None

        try:
            result: dict[str, Any] = await eventually(probe, within=120, interval=0.5)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; last attainment {self.last_seen}") from exc
        return result

    async def observe(self) -> None:
        """Read sla's topic as a subscriber would (goal.* events land in ``seen``)."""

        async def collect(message: Message) -> None:
            envelope = ev.decode(message.value, message.key)
            if envelope.type.startswith("goal."):
                self.seen.append(envelope)

        group = f"goal-observer-{uuid.uuid4().hex[:6]}"
        await self.bus.subscribe([self.settings.topic("sla")], group, collect)

    async def goal_events(self, goal_id: str, expected: list[str]) -> None:
        """Wait until the goal's events on sla's topic are exactly ``expected``."""

        async def probe() -> bool:
            return [e.type for e in self.seen if e.subject == goal_id] == expected

        await eventually(probe, within=30)

    async def evaluate(self) -> list[tuple[str, str]]:
        return await evaluate_goals(self.runtime)


def chat_goal(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "Chat first response within a minute",
        "metric": "first_response_time",
        "scope": {"channel": ["chat"]},
        "threshold_seconds": 60,
        "target": 80,
        "period": {"kind": "week"},
        "timezone": "UTC",
    }
    body.update(overrides)
    return body


async def feed_chats(desk: Desk, start: datetime, total: int, fast: int, tag: str) -> None:
    """``total`` chats created at ``start`` + i minutes; the first ``fast`` answered in 30 s,
    the others in 120 s."""
    for i in range(total):
        ticket = f"{desk.prefix}{tag}-{i}"
        created = start + timedelta(minutes=i)
        await desk.created(ticket, created)
        await desk.message(ticket, created + timedelta(seconds=30 if i < fast else 120))
