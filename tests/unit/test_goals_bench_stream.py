"""``bench goals`` measures sla's event handling on the events router really sends: router,
embedded, takes a chat ticket from creation through routing, an agent's reply and a solve, and
the events it publishes for that ticket match the bench's ``ticket_lifecycle`` one by one."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from services.bench.goals import EVENTS_PER_TICKET, ticket_lifecycle
from services.router.app import create_app as router_app
from shared.bus import MemoryBus, Message
from shared.migrate import upgrade_all
from tests.conftest import eventually, make_settings, running


def _shape(event: dict[str, Any]) -> tuple[Any, ...]:
    """What sla's handlers and the goal bookkeeping act on, besides ids and instants."""
    ticket = event["ticket"]
    message = event.get("message") or {}
    return (
        event["type"],
        ticket["status"],
        ticket["channel"],
        ticket["assignee_id"] is not None,
        ticket["solved_at"] is not None,
        message.get("author"),
        message.get("public"),
        event.get("changes"),
        event.get("previous_status"),
    )


async def test_the_bench_stream_is_what_router_sends_for_a_routed_answered_solved_ticket(
    tmp_path: Path,
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'ticketflow.db'}"
    await upgrade_all(url)
    settings = make_settings(url)
    bus = MemoryBus(partitions=2, max_retries=1, retry_base_seconds=0.01)
    await bus.start()
    sent: list[dict[str, Any]] = []

    async def record(message: Message) -> None:
        sent.append(json.loads(message.value))

    subscription = await bus.subscribe([settings.topic("tickets")], "stream-check", record)
    try:
        async with running(router_app(settings, bus=bus)) as router:
            agent = {"name": "A1", "capacity": {"chat": 5}, "status": "online"}
            assert (await router.put("/v1/agents/a1", json=agent)).is_success
            created = await router.post(
                "/v1/tickets",
                json={"subject": "Stream", "channel": "chat", "requester": {"id": "c-1"}},
            )
            assert created.status_code == 201, created.text
            ticket_id = created.json()["id"]

            async def assigned() -> bool:
                ticket = (await router.get(f"/v1/tickets/{ticket_id}")).json()
                return ticket["assignee_id"] == "a1"

            await eventually(assigned)
            reply = {"author": "agent", "public": True, "body": "On it"}
            assert (await router.post(f"/v1/tickets/{ticket_id}/messages", json=reply)).is_success
            solve = await router.patch(f"/v1/tickets/{ticket_id}", json={"status": "solved"})
            assert solve.is_success, solve.text

            async def solved() -> bool:
                return any(e["type"] == "ticket.solved" for e in sent)

            await eventually(solved)
    finally:
        await subscription.close()
        await bus.stop()
    routed = [{**e["data"], "type": e["type"]} for e in sent if e["subject"] == ticket_id]
    bench = [
        {**event.model_dump(mode="json"), "type": event.type}
        for event in ticket_lifecycle("bench:1", datetime.now(UTC), 1)
    ]
    assert len(bench) == EVENTS_PER_TICKET
    assert [_shape(e) for e in routed] == [_shape(e) for e in bench]
    # One snapshot version per change, as the bookkeeping's idempotence checks read them.
    versions = [e["ticket"]["version"] for e in routed]
    assert [v - versions[0] for v in versions] == [
        e["ticket"]["version"] - bench[0]["ticket"]["version"] for e in bench
    ]
