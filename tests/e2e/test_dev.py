"""``ticketflow dev --demo`` as the README's walk-through uses it: no server, one process."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from services.launcher import ServiceProcess, free_port_range
from tests.conftest import eventually


async def test_readme_walkthrough_on_ticketflow_dev(tmp_path: Path) -> None:
    base = free_port_range(3)
    process = ServiceProcess.dev(
        base,
        tmp_path / "data",
        {"TICKETFLOW_API_KEYS": ""},
        demo=True,
        cwd=tmp_path,
        log_path=tmp_path / "dev.log",
    )
    await asyncio.to_thread(process.start, 90)
    headers = {"Authorization": "Bearer dev-admin-key"}
    router = httpx.AsyncClient(base_url=f"http://127.0.0.1:{base}", headers=headers)
    sla = httpx.AsyncClient(base_url=f"http://127.0.0.1:{base + 1}", headers=headers)
    survey = httpx.AsyncClient(base_url=f"http://127.0.0.1:{base + 2}", headers=headers)
    try:
        agents = (await router.get("/v1/agents")).json()["items"]
        assert {a["id"] for a in agents} >= {"ana", "ben"}, "--demo seeds agents"

        async def console_timers() -> list:
            response = await sla.get("/v1/console/snapshot")
            return list(response.json()["timers"]) if response.status_code == 200 else []

        assert await eventually(console_timers), "--demo gives the ops console open timers"
        console_agents = (await sla.get("/v1/console/agents")).json()
        assert console_agents["available"] and len(console_agents["items"]) >= 2
        assert "sign-in" in (await sla.get("/console", headers={"Authorization": ""})).text

        created = await router.post(
            "/v1/tickets",
            json={
                "subject": "I was charged twice",
                "channel": "email",
                "requester": {"email": "sam@example.com", "name": "Sam", "tier": "vip"},
            },
        )
        assert created.status_code == 201, created.text
        ticket = created.json()
        assert ticket["assignee_id"] is not None

        async def timers() -> list | None:
            response = await sla.get(f"/v1/tickets/{ticket['id']}/sla")
            return response.json()["timers"] if response.status_code == 200 else None

        assert {t["metric"] for t in await eventually(timers)} >= {"first_response", "resolution"}
        reply = await router.post(
            f"/v1/tickets/{ticket['id']}/messages",
            json={"author": "agent", "public": True, "body": "Refund is on its way."},
        )
        assert reply.status_code == 201
        solved = await router.patch(f"/v1/tickets/{ticket['id']}", json={"status": "solved"})
        assert solved.json()["status"] == "solved"

        async def surveys() -> list:
            response = await survey.get("/v1/surveys", params={"ticket_id": ticket["id"]})
            return list(response.json()["items"])

        assert (await eventually(surveys))[0]["status"] in ("scheduled", "sent")
    finally:
        for client in (router, sla, survey):
            await client.aclose()
        await asyncio.to_thread(process.stop)
    log = (tmp_path / "dev.log").read_text()
    assert "Traceback" not in log
    # First run reads cleanly: one banner with the keys and the console, no per-request noise.
    assert "API key (reader): dev-reader-key" in log
    assert f"console http://127.0.0.1:{base + 1}/console" in log
    assert "HTTP Request:" not in log
    assert log.count("Application startup complete") <= 1
