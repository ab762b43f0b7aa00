"""Routing on real PostgreSQL and the Kafka-protocol broker: the queue, returning customers,
offline hand-back and SLA escalation re-routing."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from services.router.app import create_app as router_app
from shared import events as ev
from shared.settings import Settings
from tests.conftest import eventually, make_settings, running


@pytest.fixture
async def router(
    postgres_url: str, kafka_bootstrap: str
) -> AsyncIterator[tuple[httpx.AsyncClient, FastAPI, Settings]]:
    settings = make_settings(postgres_url, kafka_bootstrap_servers=kafka_bootstrap)
    app = router_app(settings)
    async with running(app) as client:
        yield client, app, settings


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def put_agent(client: httpx.AsyncClient, agent_id: str, **body: Any) -> None:
    values: dict[str, Any] = {"name": agent_id, "status": "online", "capacity": {"chat": 1}}
    values.update(body)
    response = await client.put(f"/v1/agents/{agent_id}", json=values)
    assert response.status_code in (200, 201), response.text


async def new_ticket(client: httpx.AsyncClient, group: str, requester: str, **body: Any) -> dict:
    values: dict[str, Any] = {
        "subject": "Help",
        "channel": "chat",
        "group": group,
        "requester": {"email": requester},
    }
    values.update(body)
    response = await client.post("/v1/tickets", json=values)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def assignee(client: httpx.AsyncClient, ticket_id: str) -> str | None:
    return (await client.get(f"/v1/tickets/{ticket_id}")).json()["assignee_id"]


async def test_queue_drains_when_capacity_frees_most_urgent_first(
    router: tuple[httpx.AsyncClient, FastAPI, Settings],
) -> None:
    client = router[0]
    group, agent = unique("g"), unique("a")
    await put_agent(client, agent, groups=[group])
    first = await new_ticket(client, group, f"{unique('r')}@x.io")
    assert first["assignee_id"] == agent
    normal = await new_ticket(client, group, f"{unique('r')}@x.io")
    urgent = await new_ticket(client, group, f"{unique('r')}@x.io", priority="urgent")
    assert normal["assignee_id"] is None and urgent["assignee_id"] is None

    solved = await client.patch(f"/v1/tickets/{first['id']}", json={"status": "solved"})
    assert solved.status_code == 200
    assert await assignee(client, urgent["id"]) == agent  # most urgent first, not oldest
    assert await assignee(client, normal["id"]) is None

    raised = await client.patch(f"/v1/agents/{agent}", json={"capacity": {"chat": 2}})
    assert raised.json()["load"] == {"chat": 2}
    assert await assignee(client, normal["id"]) == agent


async def test_returning_customer_goes_back_to_their_agent(
    router: tuple[httpx.AsyncClient, FastAPI, Settings],
) -> None:
    client = router[0]
    group, first_agent, second_agent = unique("g"), unique("a"), unique("b")
    await put_agent(client, first_agent, groups=[group], capacity={"chat": 3})
    customer = f"{unique('r')}@x.io"
    earlier = await new_ticket(client, group, customer)
    assert earlier["assignee_id"] == first_agent
    await put_agent(client, second_agent, groups=[group], capacity={"chat": 3})
    # second_agent is less loaded, but the customer has an open ticket with first_agent.
    again = await new_ticket(client, group, customer)
    assert again["assignee_id"] == first_agent
    assert again["routing_history"][-1]["reason"] == "returning_customer"
    stranger = await new_ticket(client, group, f"{unique('r')}@x.io")
    assert stranger["assignee_id"] == second_agent
    assert stranger["routing_history"][-1]["reason"] == "least_loaded"


async def test_offline_agent_hands_back_unanswered_tickets(
    router: tuple[httpx.AsyncClient, FastAPI, Settings],
) -> None:
    client = router[0]
    group, leaving, staying = unique("g"), unique("a"), unique("b")
    await put_agent(client, leaving, groups=[group], capacity={"chat": 3})
    answered = await new_ticket(client, group, f"{unique('r')}@x.io")
    unanswered = await new_ticket(client, group, f"{unique('r')}@x.io")
    manual = await new_ticket(client, group, f"{unique('r')}@x.io")
    assert {answered["assignee_id"], unanswered["assignee_id"]} == {leaving}
    reply = await client.post(
        f"/v1/tickets/{answered['id']}/messages",
        json={"author": "agent", "public": True, "body": "Looking"},
    )
    assert reply.status_code == 201
    pinned = await client.patch(f"/v1/tickets/{manual['id']}", json={"assignee_id": leaving})
    assert pinned.status_code == 200
    await put_agent(client, staying, groups=[group], status="offline", capacity={"chat": 3})

    gone = await client.patch(f"/v1/agents/{leaving}", json={"status": "offline"})
    assert gone.status_code == 200
    assert await assignee(client, answered["id"]) == leaving
    assert await assignee(client, manual["id"]) == leaving  # manual assignment always wins
    handed = (await client.get(f"/v1/tickets/{unanswered['id']}")).json()
    assert handed["assignee_id"] is None
    assert handed["routing_history"][-1]["kind"] == "unassignment"

    back = await client.patch(f"/v1/agents/{staying}", json={"status": "online"})
    assert back.status_code == 200
    assert await assignee(client, unanswered["id"]) == staying


async def test_sla_escalation_sets_group_and_priority_and_reroutes(
    router: tuple[httpx.AsyncClient, FastAPI, Settings],
) -> None:
    client, app, settings = router
    tier1, tier2 = unique("t1"), unique("t2")
    first_line, expert = unique("a"), unique("e")
    await put_agent(client, first_line, groups=[tier1], capacity={"chat": 3})
    await put_agent(client, expert, groups=[tier2], capacity={"chat": 3})
    ticket = await new_ticket(client, tier1, f"{unique('r')}@x.io")
    assert ticket["assignee_id"] == first_line

    escalation = ev.SlaEscalated(
        ticket_id=ticket["id"],
        metric="first_response",
        timer_id=uuid.uuid4().hex,
        level=1,
        when="breach",
        actions={"set_group": tier2, "set_priority": "urgent", "notify": "lead@x.io"},
    )
    key, value, headers = ev.encode(escalation, source="ticketflow/sla")
    bus = app.state.runtime.bus
    for _ in range(2):  # at least once: a redelivery changes nothing more
        await bus.publish(settings.topic("sla"), key, value, headers)

    async def rerouted() -> dict | None:
        body = (await client.get(f"/v1/tickets/{ticket['id']}")).json()
        return dict(body) if body["assignee_id"] == expert else None

    body = await eventually(rerouted)
    assert body["group"] == tier2 and body["priority"] == "urgent"
    kinds = [d["kind"] for d in body["routing_history"]]
    assert kinds.count("escalation") == 1
    assert body["routing_history"][-1]["reason"] == "least_loaded"
