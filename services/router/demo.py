"""Demo routing rules for ``ticketflow dev --demo``, created through the public API.

Needs the demo agents first: rules may only name groups and skills some agent has.
"""

from __future__ import annotations

import logging
from typing import Any

import httpx

log = logging.getLogger("ticketflow.demo")

RULES: list[dict[str, Any]] = [
    {
        "name": "VIP customers are urgent",
        "position": 10,
        "enabled": True,
        "conditions": {"all": [{"field": "requester.tier", "op": "eq", "value": "vip"}]},
        "actions": {"set_priority": "urgent", "add_tags": ["vip"]},
    },
    {
        "name": "Refunds and invoices need billing",
        "position": 20,
        "enabled": True,
        "conditions": {
            "any": [
                {"field": "subject", "op": "matches", "value": "(?i)refund|invoice"},
                {"field": "description", "op": "matches", "value": "(?i)refund|invoice"},
            ]
        },
        "actions": {"require_skills": ["billing"], "add_tags": ["billing"]},
    },
    {
        "name": "Chat goes to support",
        "position": 30,
        "enabled": True,
        "conditions": {"all": [{"field": "channel", "op": "eq", "value": "chat"}]},
        "actions": {"set_group": "support"},
    },
]


async def seed(client: httpx.AsyncClient, router_url: str) -> None:
    """Create the demo rules; idempotent: a rule of the same name is replaced, not duplicated."""
    response = await client.get(f"{router_url}/v1/routing-rules", params={"limit": 200})
    response.raise_for_status()
    existing = {rule["name"]: rule["id"] for rule in response.json()["items"]}
    for rule in RULES:
        rule_id = existing.get(rule["name"])
        if rule_id is None:
            response = await client.post(f"{router_url}/v1/routing-rules", json=rule)
        else:
            response = await client.put(f"{router_url}/v1/routing-rules/{rule_id}", json=rule)
        response.raise_for_status()
    log.info("demo routing rules seeded: %d rules", len(RULES))
