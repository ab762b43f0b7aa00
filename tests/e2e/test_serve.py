"""The three ``ticketflow serve`` processes on Kafka + PostgreSQL, and a crash in the middle."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import httpx

from services.launcher import ServiceProcess, free_port
from tests.conftest import eventually
from tests.e2e.conftest import ServeStack, signed_generic


async def _put_agents(stack: ServeStack, prefix: str) -> None:
    async with stack.client("router") as router:
        for n in range(3):
            response = await router.put(
                f"/v1/agents/{prefix}-{n}",
                json={
                    "name": f"Agent {n}",
                    "capacity": {"api": 1000, "web": 1000},
                    "status": "online",
                },
            )
            assert response.status_code in (200, 201), response.text


async def test_webhook_to_assignment_timers_and_survey(serve_stack: ServeStack) -> None:
    await _put_agents(serve_stack, "flow")
    external_id = f"E2E-{uuid.uuid4().hex[:8]}"
    body, headers = signed_generic(
        {
            "type": "ticket.upsert",
            "data": {
                "source": "acme",
                "external_id": external_id,
                "occurred_at": datetime.now(UTC).isoformat(),
                "ticket": {
                    "subject": "Order never arrived",
                    "channel": "web",
                    "requester": {"id": "cust-e2e", "tier": "vip"},
                },
            },
        }
    )
    async with httpx.AsyncClient(base_url=serve_stack.url("router")) as anonymous:
        accepted = await anonymous.post("/v1/webhooks/generic", content=body, headers=headers)
        assert accepted.status_code == 202, accepted.text
        assert accepted.json()["ticket_ids"] == [f"acme:{external_id}"]
        again = await anonymous.post("/v1/webhooks/generic", content=body, headers=headers)
        assert again.status_code == 202 and again.json()["duplicates"] == 1
    ticket_id = f"acme:{external_id}"
    async with (
        serve_stack.client("router") as router,
        serve_stack.client("sla") as sla,
        serve_stack.client("survey") as survey,
    ):

        async def assigned() -> dict | None:
            response = await router.get(f"/v1/tickets/{ticket_id}")
            return (
                response.json()
                if response.status_code == 200 and response.json()["assignee_id"]
                else None
            )

        ticket = await eventually(assigned, within=30)
        assert ticket["assignee_id"].startswith("flow-")

        async def timers() -> list | None:
            response = await sla.get(f"/v1/tickets/{ticket_id}/sla")
            return response.json()["timers"] if response.status_code == 200 else None

        assert {t["metric"] for t in await eventually(timers, within=30)} >= {
            "first_response",
            "resolution",
        }
        await router.patch(f"/v1/tickets/{ticket_id}", json={"status": "solved"})

        async def surveys() -> list:
            return list(
                (await survey.get("/v1/surveys", params={"ticket_id": ticket_id})).json()["items"]
            )

        assert len(await eventually(surveys, within=30)) == 1
        for service in ("router", "sla", "survey"):
            metrics = await httpx.AsyncClient(base_url=serve_stack.url(service)).get("/metrics")
            assert "ticketflow_outbox_published_total" in metrics.text


async def test_kill_9_loses_nothing_and_applies_nothing_twice(serve_stack: ServeStack) -> None:
    """Tickets flow in through the API and webhooks while router, then sla, are killed -9."""
    prefix = f"crash{uuid.uuid4().hex[:4]}"
    await _put_agents(serve_stack, prefix)
    accepted: list[str] = []
    stop = asyncio.Event()

    async def post_tickets() -> None:
        n = 0
        async with serve_stack.client("router") as router:
            while not stop.is_set():
                n += 1
                try:
                    if n % 2:
                        response = await router.post(
                            "/v1/tickets",
                            json={
                                "external_id": f"{prefix}-{n}",
                                "subject": f"crash test {n}",
                                "channel": "api",
                                "requester": {"id": f"{prefix}-cust-{n}"},
                            },
                        )
                        if response.status_code == 201:
                            accepted.append(response.json()["id"])
                    else:
                        body, headers = signed_generic(
                            {
                                "type": "ticket.upsert",
                                "data": {
                                    "source": prefix,
                                    "external_id": str(n),
                                    "occurred_at": datetime.now(UTC).isoformat(),
                                    "ticket": {
                                        "subject": f"crash test {n}",
                                        "channel": "web",
                                        "requester": {"id": f"{prefix}-cust-{n}"},
                                    },
                                },
                            }
                        )
                        response = await router.post(
                            "/v1/webhooks/generic", content=body, headers=headers
                        )
                        if response.status_code == 202:
                            accepted.extend(response.json()["ticket_ids"])
                except httpx.HTTPError:
                    pass  # the router is down: this one was not accepted
                await asyncio.sleep(0.02)

    poster = asyncio.create_task(post_tickets())
    await eventually(lambda: _at_least(accepted, 20), within=60)
    serve_stack.kill("router")
    await asyncio.sleep(0.5)
    await asyncio.to_thread(serve_stack.start, "router")
    await eventually(lambda: _at_least(accepted, 40), within=60)
    serve_stack.kill("sla")
    await asyncio.sleep(1.0)
    await asyncio.to_thread(serve_stack.start, "sla")
    await eventually(lambda: _at_least(accepted, 60), within=60)
    stop.set()
    await poster

    async with serve_stack.client("router") as router, serve_stack.client("sla") as sla:
        for ticket_id in accepted:

            async def settled(ticket_id: str = ticket_id) -> tuple[dict, list] | None:
                ticket = (await router.get(f"/v1/tickets/{ticket_id}")).json()
                response = await sla.get(f"/v1/tickets/{ticket_id}/sla")
                if not ticket.get("assignee_id") or response.status_code != 200:
                    return None
                timers = response.json()["timers"]
                return (ticket, timers) if len(timers) >= 2 else None

            ticket, timers = await eventually(settled, within=60)
            assignments = [d for d in ticket["routing_history"] if d["kind"] == "assignment"]
            assert len(assignments) == 1, f"{ticket_id} assigned {len(assignments)} times"
            metrics = sorted(t["metric"] for t in timers)
            assert metrics == ["first_response", "resolution"], f"{ticket_id}: {metrics}"
    assert len(set(accepted)) == len(accepted)


async def _at_least(items: list[str], n: int) -> bool:
    return len(items) >= n


async def test_router_scales_out_as_api_and_workers(serve_stack: ServeStack) -> None:
    """``serve router --role worker`` processes join router's consumer group beside the running
    router: every ticket is still assigned exactly once, and a worker answers only ops paths."""
    await _put_agents(serve_stack, "scale")
    workers = []
    for number in range(2):
        port = free_port()
        process = ServiceProcess.serve(
            "router",
            port,
            serve_stack.env,
            role="worker",
            log_path=serve_stack.logs / f"router-worker{number}.log",
        )
        await asyncio.to_thread(process.start, 90)
        workers.append((process, port))
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{workers[0][1]}") as ops:
            assert (await ops.get("/readyz")).status_code == 200
            metrics = await ops.get("/metrics")
            assert "ticketflow_db_statements_total" in metrics.text
            refused = await ops.get("/v1/tickets")
            assert refused.status_code == 404
            error = refused.json()["error"]
            assert error["code"] == "not_found" and "worker" in error["message"]
        ticket_ids = []
        async with httpx.AsyncClient(base_url=serve_stack.url("router")) as anonymous:
            for n in range(30):
                external_id = f"SCALE-{uuid.uuid4().hex[:8]}-{n}"
                body, headers = signed_generic(
                    {
                        "type": "ticket.upsert",
                        "data": {
                            "source": "acme",
                            "external_id": external_id,
                            "occurred_at": datetime.now(UTC).isoformat(),
                            "ticket": {
                                "subject": "Scale-out",
                                "channel": "web",
                                "requester": {"id": f"cust-scale-{n}"},
                            },
                        },
                    }
                )
                accepted = await anonymous.post(
                    "/v1/webhooks/generic", content=body, headers=headers
                )
                assert accepted.status_code == 202, accepted.text
                ticket_ids.append(f"acme:{external_id}")
        async with serve_stack.client("router") as router:
            for ticket_id in ticket_ids:

                async def assigned(ticket_id: str = ticket_id) -> dict | None:
                    response = await router.get(f"/v1/tickets/{ticket_id}")
                    ticket = response.json() if response.status_code == 200 else {}
                    return ticket if ticket.get("assignee_id") else None

                ticket = await eventually(assigned, within=60)
                assignments = [d for d in ticket["routing_history"] if d["kind"] == "assignment"]
                assert len(assignments) == 1, f"{ticket_id} assigned {len(assignments)} times"
    finally:
        for process, _ in workers:
            await asyncio.to_thread(process.stop)
