"""PostgreSQL goes away under a running service: honest 503s, then recovery on its own.

The database is a private cluster (``initdb`` + ``pg_ctl``) that the test crashes with
``pg_ctl stop -m immediate`` and starts again, so the pooled connections really die.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from contextlib import AsyncExitStack
from datetime import UTC, datetime

import httpx

from services.launcher import PostgresCluster
from services.router.app import create_app as router_app
from services.sla.app import create_app as sla_app
from services.survey.app import create_app as survey_app
from tests.conftest import create_private_database, eventually, make_settings, running
from tests.intake_support import SECRET_SETTINGS, signed


def generic_webhook(external_id: str) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(
        {
            "type": "ticket.upsert",
            "data": {
                "source": "outage",
                "external_id": external_id,
                "occurred_at": datetime.now(UTC).isoformat(),
                "ticket": {"subject": "Down", "channel": "web", "requester": {"id": "c1"}},
            },
        }
    ).encode()
    return body, signed("generic", body)


def assert_unavailable(response: httpx.Response, dependency: str = "database") -> None:
    assert response.status_code == 503, (response.status_code, response.text)
    assert int(response.headers["retry-after"]) > 0
    error = response.json()["error"]
    assert error["code"] == "unavailable", error
    assert error["details"][0]["dependency"] == dependency, error


async def test_outage_answers_503_and_the_pool_recovers(
    private_postgres: PostgresCluster, kafka_bootstrap: str
) -> None:
    url = await create_private_database(private_postgres)
    settings = make_settings(url, kafka_bootstrap_servers=kafka_bootstrap, **SECRET_SETTINGS)
    async with running(router_app(settings)) as router:
        put = await router.put(
            "/v1/agents/outage-agent",
            json={"name": "Outage Agent", "capacity": {"email": 5}, "status": "online"},
        )
        assert put.status_code in (200, 201), put.text
        # Fill the pool with several connections, all of which the crash will kill.
        answers = await asyncio.gather(*(router.get("/v1/agents") for _ in range(8)))
        assert {a.status_code for a in answers} == {200}

        await asyncio.to_thread(private_postgres.stop, "immediate")
        stopped_at = time.monotonic()
        body, headers = generic_webhook("outage-1")
        attempts = [
            router.get("/v1/agents"),
            router.get("/v1/agents/outage-agent"),
            router.get("/v1/tickets/api:nothing"),
            router.put("/v1/agents/outage-2", json={"name": "Two", "status": "online"}),
            router.post(
                "/v1/tickets",
                json={"subject": "Down", "channel": "email", "requester": {"email": "a@b.c"}},
            ),
            router.post("/v1/webhooks/generic", content=body, headers=headers),
        ]
        for response in await asyncio.gather(*attempts):
            assert_unavailable(response)
        ready = await router.get("/readyz")
        assert_unavailable(ready)

        await asyncio.to_thread(private_postgres.start)

        async def recovered() -> bool:
            return (await router.get("/v1/agents")).status_code == 200

        await eventually(recovered, within=60, interval=0.2)
        print(f"\nrouter answered again {time.monotonic() - stopped_at:.1f}s after the crash")
        # Every dead connection was dropped: from now on, every request succeeds.
        again = await asyncio.gather(*(router.get("/v1/agents") for _ in range(20)))
        assert [a.status_code for a in again] == [200] * 20
        assert (await router.get("/readyz")).status_code == 200
        accepted = await router.post("/v1/webhooks/generic", content=body, headers=headers)
        assert accepted.status_code == 202, accepted.text


# Not plain request/response endpoints, or not touching the database.
# Not the database's: the process's own pages, the endless stream, and the console's agents panel,
# which reads router's public API (and says when router is out of reach).
_SKIP = {
    "/healthz",
    "/metrics",
    "/openapi.json",
    "/docs",
    "/v1/stream",
    "/console",
    "/readyz",
    "/v1/console/agents",
}


async def test_every_get_endpoint_of_every_service_answers_503_not_500(
    private_postgres: PostgresCluster, kafka_bootstrap: str
) -> None:
    """Walks each service's OpenAPI document: while PostgreSQL is down, every GET endpoint
    answers 503 with Retry-After (or a 4xx when the request itself is wrong), never a 500."""
    url = await create_private_database(private_postgres, "ticketflow_walk")
    settings = make_settings(url, kafka_bootstrap_servers=kafka_bootstrap, **SECRET_SETTINGS)
    async with AsyncExitStack() as stack:
        clients = {
            name: await stack.enter_async_context(running(factory(settings)))
            for name, factory in (("router", router_app), ("sla", sla_app), ("survey", survey_app))
        }
        documents = {name: (await c.get("/openapi.json")).json() for name, c in clients.items()}
        await asyncio.to_thread(private_postgres.stop, "immediate")
        unavailable = 0
        for name, client in clients.items():
            for path, operations in documents[name]["paths"].items():
                if "get" not in operations or path in _SKIP or path.startswith("/console"):
                    continue
                concrete = re.sub(r"\{[^}]+\}", "x", path)
                response = await client.get(concrete)
                where = f"{name} GET {concrete}: {response.status_code} {response.text[:200]}"
                if response.status_code == 503:
                    assert_unavailable(response)
                    unavailable += 1
                else:
                    assert 400 <= response.status_code < 500, where
            ready = await client.get("/readyz")
            assert_unavailable(ready)
        assert unavailable >= 15, f"only {unavailable} endpoints reached the database"
        await asyncio.to_thread(private_postgres.start)
