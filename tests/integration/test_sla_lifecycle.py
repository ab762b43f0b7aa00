"""sla on PostgreSQL and the real broker: router's events in, sla's events out, a fake clock.

Drives one ticket through pause, resume, priority change, warning, breach and escalation, a
restart of sla while timers come due (fired late on start), two sla instances sharing the
timers (each event once), solve and reopen; every sla event is read back from the sla topic.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.sla.app import create_app
from shared import events as ev
from shared.bus import KafkaBus, Message
from shared.settings import Settings
from tests.conftest import eventually, make_settings, running


class FakeClock:
    def __init__(self, now: datetime) -> None:
        self.current = now

    def now(self) -> datetime:
        return self.current

    async def sleep(self, seconds: float) -> None:
        self.current += timedelta(seconds=max(0.0, seconds))
        await asyncio.sleep(0)


class Router:
    """Publishes router's events for one ticket, as router would (growing ``version``)."""

    def __init__(self, bus: KafkaBus, settings: Settings, ticket_id: str, clock: FakeClock):
        self.bus, self.settings, self.ticket_id, self.clock = bus, settings, ticket_id, clock
        self.version = 0
        self.state: dict[str, Any] = {
            "id": ticket_id,
            "source": "api",
            "external_id": ticket_id.split(":", 1)[1],
            "subject": "Database down",
            "status": "open",
            "priority": "normal",
            "channel": "email",
            "requester": {"id": "r1"},
            "tags": [ticket_id],
            "created_at": clock.now(),
        }

    def snapshot(self, **changes: Any) -> ev.TicketSnapshot:
        self.version += 1
        self.state.update(changes)
        return ev.TicketSnapshot.model_validate(
            {**self.state, "updated_at": self.clock.now(), "version": self.version}
        )

    async def publish(self, event: ev.Event, event_id: str | None = None) -> str:
        event_id = event_id or ev.new_event_id()
        key, value, headers = ev.encode(event, source="router", event_id=event_id)
        await self.bus.publish(self.settings.topic("tickets"), key, value, headers)
        return event_id


@pytest.fixture
async def kafka(kafka_bootstrap: str) -> AsyncIterator[KafkaBus]:
    bus = KafkaBus(kafka_bootstrap, client_id="test-sla-lifecycle", partitions=4)
    await bus.start()
    yield bus
    await bus.stop()


async def test_sla_lifecycle_on_postgres_and_kafka(
    postgres_url: str, kafka_bootstrap: str, kafka: KafkaBus
) -> None:
    settings = make_settings(postgres_url, kafka_bootstrap_servers=kafka_bootstrap)
    await kafka.ensure_topics([settings.topic("tickets"), settings.topic("sla")])
    t0 = datetime.now(UTC).replace(microsecond=0)
    clock = FakeClock(t0)
    ticket_id = f"api:sla-{uuid.uuid4().hex[:12]}"
    router = Router(kafka, settings, ticket_id, clock)

    seen: list[ev.Envelope] = []

    async def observe(message: Message) -> None:
        envelope = ev.decode(message.value, message.key)
        if envelope.subject == ticket_id:
            seen.append(envelope)

    await kafka.subscribe([settings.topic("sla")], f"observer-{uuid.uuid4().hex[:6]}", observe)

    def events(kind: str, **match: Any) -> list[dict[str, Any]]:
        return [
            e.data
            for e in seen
            if e.type == kind and all(e.data.get(k) == v for k, v in match.items())
        ]

    def at(minutes: float) -> datetime:
        return t0 + timedelta(minutes=minutes)

    async with AsyncExitStack() as stack:
        app = create_app(settings, clock=clock)
        sla = await stack.enter_async_context(running(app))
        policy = await sla.post(
            "/v1/sla-policies",
            json={
                "name": f"lifecycle {ticket_id}",
                "position": 0,
                "conditions": {"all": [{"field": "tags", "op": "contains", "value": ticket_id}]},
                "targets": [
                    {"priority": "normal", "metric": "first_response", "minutes": 30},
                    {"priority": "normal", "metric": "resolution", "minutes": 120},
                    {"priority": "high", "metric": "first_response", "minutes": 10},
                    {"priority": "high", "metric": "resolution", "minutes": 60},
                ],
                "warn_at": [0.5],
                # Per metric: this policy also pauses first response (not the default).
                "pause_statuses": {
                    "first_response": ["pending", "on_hold"],
                    "resolution": ["pending", "on_hold"],
                },
                "escalations": [
                    {
                        "metric": "first_response",
                        "level": 1,
                        "when": "breach",
                        "actions": {"set_group": "tier2"},
                    }
                ],
            },
        )
        assert policy.status_code == 201, policy.text
        policy_id = policy.json()["id"]

        async def timers() -> dict[str, dict[str, Any]]:
            response = await sla.get(f"/v1/tickets/{ticket_id}/sla")
            if response.status_code != 200:
                return {}
            return {t["metric"]: t for t in response.json()["timers"]}

        created_id = await router.publish(ev.TicketCreated(ticket=router.snapshot()))
        await router.publish(ev.TicketCreated(ticket=router.snapshot()), event_id=created_id)
        await eventually(lambda: asyncio.sleep(0, len(events("sla.started")) == 2))
        state = await timers()
        assert datetime.fromisoformat(state["first_response"]["due_at"]) == at(30)

        # Pending at +10 min pauses both timers; open at +20 resumes them (10 min paused).
        clock.current = at(10)
        await router.publish(
            ev.TicketStatusChanged(ticket=router.snapshot(status="pending"), previous_status="open")
        )
        await eventually(lambda: asyncio.sleep(0, len(events("sla.paused")) == 2))
        clock.current = at(20)
        await router.publish(
            ev.TicketStatusChanged(ticket=router.snapshot(status="open"), previous_status="pending")
        )
        await eventually(lambda: asyncio.sleep(0, len(events("sla.resumed")) == 2))
        state = await timers()
        assert state["first_response"]["paused_seconds"] == 600
        assert datetime.fromisoformat(state["first_response"]["due_at"]) == at(40)

        # High priority at +25: first response (10 min, 15 used) is overdue at once: the
        # warning, the breach and the level-1 escalation fire; resolution is due at +70.
        clock.current = at(25)
        await router.publish(
            ev.TicketPrioritized(
                ticket=router.snapshot(priority="high"), previous_priority="normal", reason="vip"
            )
        )
        await eventually(lambda: asyncio.sleep(0, bool(events("sla.escalated"))))
        breach = events("sla.breached", metric="first_response")[0]
        assert datetime.fromisoformat(breach["due_at"]) == at(25)
        assert breach["late"] is False
        assert events("sla.escalated")[0]["actions"] == {"set_group": "tier2"}
        state = await timers()
        assert datetime.fromisoformat(state["resolution"]["due_at"]) == at(70)

    # sla is down while resolution's warning (+40) and breach (+70) come due.
    clock.current = at(80)
    async with AsyncExitStack() as stack:
        # Two instances share the timers: each event still fires once.
        first = await stack.enter_async_context(running(create_app(settings, clock=clock)))
        await stack.enter_async_context(running(create_app(settings, clock=clock)))
        await eventually(
            lambda: asyncio.sleep(0, bool(events("sla.breached", metric="resolution")))
        )
        late_breach = events("sla.breached", metric="resolution")[0]
        assert late_breach["late"] is True
        assert datetime.fromisoformat(late_breach["due_at"]) == at(70)
        assert events("sla.warning", metric="resolution")[0]["late"] is True

        # Agent replies, the ticket is solved, then reopened: resolution runs again.
        clock.current = at(85)
        reply = ev.MessageInfo(id="m1", author="agent", created_at=clock.now())
        await router.publish(ev.TicketMessageAdded(ticket=router.snapshot(), message=reply))
        await router.publish(
            ev.TicketSolved(ticket=router.snapshot(status="solved", solved_at=clock.now()))
        )
        await eventually(lambda: asyncio.sleep(0, len(events("sla.met")) == 2))
        clock.current = at(90)
        await router.publish(
            ev.TicketReopened(ticket=router.snapshot(status="open"), previous_status="solved")
        )
        await eventually(lambda: asyncio.sleep(0, len(events("sla.resumed")) == 3))
        response = await first.get(f"/v1/tickets/{ticket_id}/sla")
        state = {t["metric"]: t for t in response.json()["timers"]}
        assert state["resolution"]["status"] == "breached"
        assert state["resolution"]["met_at"] is None
        clock.current = at(95)
        await router.publish(
            ev.TicketSolved(ticket=router.snapshot(status="solved", solved_at=clock.now()))
        )
        await eventually(lambda: asyncio.sleep(0, len(events("sla.met")) == 3))
        breaches = await first.get("/v1/breaches", params={"from": t0.isoformat()})
        mine = [b for b in breaches.json()["items"] if b["ticket_id"] == ticket_id]
        assert sorted(b["metric"] for b in mine) == ["first_response", "resolution"]
        assert (await first.delete(f"/v1/sla-policies/{policy_id}")).status_code == 204
        await asyncio.sleep(1.5)  # let any duplicate surface before counting

    counts = Counter(e.type for e in seen)
    assert counts == {
        "sla.started": 2,
        "sla.paused": 2,
        "sla.resumed": 3,
        "sla.warning": 2,
        "sla.breached": 2,
        "sla.escalated": 1,
        "sla.met": 3,
    }
