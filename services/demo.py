"""``ticketflow dev --demo``: example data, created through the public APIs.

Agents live here; each service's own example data is in ``services/<service>/demo.py``.
Everything is idempotent, so a second ``--demo`` start changes nothing.
"""

from __future__ import annotations

import logging

import httpx

from shared.runtime import ServiceRuntime

log = logging.getLogger("ticketflow.demo")

AGENTS = [
    {
        "id": "ana",
        "name": "Ana Lopez",
        "email": "ana@example.com",
        "groups": ["support"],
        "skills": ["billing", "spanish"],
        "capacity": {"email": 25, "chat": 3, "web": 25, "phone": 1},
        "status": "online",
        "timezone": "Europe/Madrid",
    },
    {
        "id": "ben",
        "name": "Ben Okafor",
        "email": "ben@example.com",
        "groups": ["support", "tier2"],
        "skills": ["technical", "api"],
        "capacity": {"email": 20, "chat": 2, "web": 20, "api": 20},
        "status": "online",
        "timezone": "Europe/London",
    },
    {
        "id": "chloe",
        "name": "Chloe Martin",
        "email": "chloe@example.com",
        "groups": ["support"],
        "skills": ["billing"],
        "capacity": {"email": 25, "chat": 3, "web": 25},
        "status": "away",
        "timezone": "America/New_York",
    },
]


async def seed(
    router_url: str,
    sla_url: str,
    survey_url: str,
    api_key: str,
    sla_runtime: ServiceRuntime | None = None,
) -> None:
    """Seed every service; with the in-process ``sla_runtime`` (``ticketflow dev``) also the
    service goals and their generated past tickets."""
    from services.router import demo as router_demo
    from services.sla import demo as sla_demo
    from services.sla.console import demo as console_demo
    from services.survey import demo as survey_demo

    headers = {"Authorization": f"Bearer {api_key}"}
    async with httpx.AsyncClient(headers=headers, timeout=10) as client:
        for agent in AGENTS:
            body = {k: v for k, v in agent.items() if k != "id"}
            response = await client.put(f"{router_url}/v1/agents/{agent['id']}", json=body)
            response.raise_for_status()
        await router_demo.seed(client, router_url)
        await sla_demo.seed(client, sla_url)
        await survey_demo.seed(client, survey_url)
        await console_demo.seed_tickets(client, router_url)  # live data for the ops console
    if sla_runtime is not None:
        from services.sla.goals import demo as goals_demo

        await goals_demo.seed(sla_runtime)
    log.info("demo data seeded: agents, routing rules, a calendar, SLA and survey policies")
