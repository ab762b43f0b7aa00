"""Two router instances on one PostgreSQL database race to assign: never the same ticket twice,
never an agent over capacity."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack

import httpx

from services.router.app import create_app as router_app
from tests.conftest import make_settings, running

AGENTS = {"race-a": 2, "race-b": 1, "race-c": 2}


async def check_invariants(client: httpx.AsyncClient, ticket_ids: list[str]) -> int:
    """Assert the invariants; return how many tickets are assigned now."""
    agents = (await client.get("/v1/agents")).json()["items"]
    for agent in agents:
        assert agent["load"].get("chat", 0) <= agent["capacity"]["chat"], agent
    assigned = 0
    for ticket_id in ticket_ids:
        ticket = (await client.get(f"/v1/tickets/{ticket_id}")).json()
        assignments = [d for d in ticket["routing_history"] if d["kind"] == "assignment"]
        assert len(assignments) <= 1, ticket["routing_history"]
        if ticket["assignee_id"] is not None:
            assigned += 1
            assert len(assignments) == 1
    return assigned


async def test_two_routers_never_double_assign_nor_overfill(
    fresh_database: Callable[[], Awaitable[str]], kafka_bootstrap: str
) -> None:
    url = await fresh_database()
    settings = make_settings(url, kafka_bootstrap_servers=kafka_bootstrap)
    async with AsyncExitStack() as stack:
        first = await stack.enter_async_context(running(router_app(settings)))
        second = await stack.enter_async_context(running(router_app(settings)))
        for agent_id, capacity in AGENTS.items():
            response = await first.put(
                f"/v1/agents/{agent_id}",
                json={"name": agent_id, "status": "online", "capacity": {"chat": capacity}},
            )
            assert response.status_code == 201, response.text

        async def create(client: httpx.AsyncClient, n: int) -> str:
            response = await client.post(
                "/v1/tickets",
                json={
                    "external_id": f"race-{n}-{uuid.uuid4().hex[:6]}",
                    "subject": "Race",
                    "channel": "chat",
                    "requester": {"email": f"r{n}-{uuid.uuid4().hex[:6]}@x.io"},
                },
            )
            assert response.status_code == 201, response.text
            return str(response.json()["id"])

        clients = [first, second]
        ticket_ids = list(await asyncio.gather(*(create(clients[n % 2], n) for n in range(24))))
        assigned = await check_invariants(first, ticket_ids)
        assert 1 <= assigned <= sum(AGENTS.values())

        # Free capacity from both instances at once: both drain the same queue concurrently.
        for _ in range(3):
            listed = (await first.get("/v1/tickets", params={"status": "new", "limit": 100})).json()
            mine = [t for t in listed["items"] if t["id"] in ticket_ids and t["assignee_id"]]
            results = await asyncio.gather(
                *(
                    clients[n % 2].patch(f"/v1/tickets/{t['id']}", json={"status": "solved"})
                    for n, t in enumerate(mine)
                ),
                *(
                    clients[n % 2].patch(f"/v1/agents/{agent_id}", json={"status": "online"})
                    for n, agent_id in enumerate(AGENTS)
                ),
            )
            assert all(r.status_code == 200 for r in results), [r.text for r in results]
            await check_invariants(second, ticket_ids)
