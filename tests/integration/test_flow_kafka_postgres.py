"""The thin end-to-end flow on real PostgreSQL and a real Kafka-protocol broker, in-process."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import httpx
import pytest

from services.router.app import create_app as router_app
from services.sla.app import create_app as sla_app
from services.survey.app import create_app as survey_app
from tests.conftest import eventually, make_settings, running
from tests.vendor_support import sla_and_survey_semantics


@pytest.fixture
async def services(
    postgres_url: str, kafka_bootstrap: str
) -> AsyncIterator[dict[str, httpx.AsyncClient]]:
    settings = make_settings(postgres_url, kafka_bootstrap_servers=kafka_bootstrap)
    async with AsyncExitStack() as stack:
        clients = {
            "router": await stack.enter_async_context(running(router_app(settings))),
            "sla": await stack.enter_async_context(running(sla_app(settings))),
            "survey": await stack.enter_async_context(running(survey_app(settings))),
        }
        yield clients


async def test_ticket_flows_through_router_sla_and_survey(
    services: dict[str, httpx.AsyncClient],
) -> None:
    router, sla, survey = services["router"], services["sla"], services["survey"]
    agent = await router.put(
        "/v1/agents/flow-agent",
        json={"name": "Flow Agent", "capacity": {"email": 5}, "status": "online"},
    )
    assert agent.status_code in (200, 201), agent.text

    created = await router.post(
        "/v1/tickets",
        json={
            "subject": "Printer on fire",
            "channel": "email",
            "requester": {"email": "pat@example.com"},
        },
    )
    assert created.status_code == 201, created.text
    ticket = created.json()
    assert ticket["assignee_id"] == "flow-agent"
    assert ticket["routing_history"][0]["reason"] == "least_loaded"

    async def timers() -> list[dict] | None:
        response = await sla.get(f"/v1/tickets/{ticket['id']}/sla")
        return response.json()["timers"] if response.status_code == 200 else None

    started = await eventually(timers)
    assert sorted(t["metric"] for t in started) == ["first_response", "resolution"]
    assert all(t["status"] == "running" for t in started)

    reply = await router.post(
        f"/v1/tickets/{ticket['id']}/messages",
        json={"author": "agent", "public": True, "body": "On it"},
    )
    assert reply.status_code == 201

    async def first_response_met() -> bool:
        return any(
            t["metric"] == "first_response" and t["status"] == "met" for t in await timers() or []
        )

    await eventually(first_response_met)

    solved = await router.patch(f"/v1/tickets/{ticket['id']}", json={"status": "solved"})
    assert solved.status_code == 200 and solved.json()["status"] == "solved"

    async def surveys() -> list[dict]:
        response = await survey.get("/v1/surveys", params={"ticket_id": ticket["id"]})
        return list(response.json()["items"])

    scheduled = await eventually(surveys)
    assert len(scheduled) == 1
    assert scheduled[0]["kind"] == "csat" and scheduled[0]["status"] == "scheduled"
    assert scheduled[0]["assignee_id"] == "flow-agent"


async def test_sla_and_survey_semantics(services: dict[str, httpx.AsyncClient]) -> None:
    await sla_and_survey_semantics(services)
