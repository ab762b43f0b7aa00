"""SIGTERM to ``ticketflow dev`` under load: it finishes what it accepted and loses nothing.

``dev`` runs the three services on an in-process bus, which forgets its messages when the
process exits; a graceful stop must therefore hand every event in flight to its consumers
first. After a restart on the same data directory, every ticket that got a 201 must have its
SLA timers, exactly once. (SIGTERM of ``ticketflow serve`` is in test_faults.py.)
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx

from services.launcher import ServiceProcess, free_port_range

HEADERS = {"Authorization": "Bearer dev-admin-key"}


async def test_sigterm_to_dev_under_load_loses_nothing(tmp_path: Path) -> None:
    base = free_port_range(3)

    def dev() -> ServiceProcess:
        return ServiceProcess.dev(
            base,
            tmp_path / "data",
            {"TICKETFLOW_API_KEYS": ""},
            cwd=tmp_path,
            log_path=tmp_path / "dev.log",
        )

    process = dev()
    await asyncio.to_thread(process.start, 90)
    created: list[str] = []
    refused = 0
    router = httpx.AsyncClient(base_url=f"http://127.0.0.1:{base}", headers=HEADERS, timeout=30)
    try:
        for n in range(3):
            agent = await router.put(
                f"/v1/agents/stop-{n}",
                json={"name": f"Agent {n}", "capacity": {"email": 10000}, "status": "online"},
            )
            assert agent.status_code in (200, 201), agent.text

        async def post(worker: int) -> None:
            nonlocal refused
            n = 0
            while True:
                n += 1
                try:
                    response = await router.post(
                        "/v1/tickets",
                        json={
                            "subject": f"shutdown {worker}-{n}",
                            "channel": "email",
                            "requester": {"email": f"c{worker}-{n}@example.com"},
                        },
                    )
                except httpx.HTTPError:
                    refused += 1  # the server is gone: not accepted
                    return
                assert response.status_code == 201, response.text
                created.append(response.json()["id"])

        posters = [asyncio.create_task(post(w)) for w in range(4)]
        await asyncio.sleep(4)
        started = time.monotonic()
        status = await asyncio.to_thread(process.terminate, 120.0)
        took = time.monotonic() - started
        await asyncio.gather(*posters)
        print(f"\n  dev: exit status {status} {took:.1f}s after SIGTERM; {len(created)} accepted")
        assert status == 0
        assert created, "nothing was accepted before the stop"
    finally:
        await router.aclose()

    process = dev()
    await asyncio.to_thread(process.start, 90)
    try:
        async with (
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{base}", headers=HEADERS) as router,
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{base + 1}", headers=HEADERS) as sla,
        ):
            for ticket_id in created:
                ticket = (await router.get(f"/v1/tickets/{ticket_id}")).json()
                assignments = [d for d in ticket["routing_history"] if d["kind"] == "assignment"]
                assert len(assignments) == 1, f"{ticket_id}: {assignments}"
                timers = (await sla.get(f"/v1/tickets/{ticket_id}/sla")).json()
                metrics = sorted(t["metric"] for t in timers.get("timers", []))
                assert metrics == ["first_response", "resolution"], f"{ticket_id}: {timers}"
    finally:
        await asyncio.to_thread(process.stop)
    assert "Traceback" not in (tmp_path / "dev.log").read_text()
