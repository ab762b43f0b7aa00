"""Demo tickets for the ops console (``ticketflow dev --demo``), created through router's API.

Chat tickets outnumber the demo agents' chat capacity, so some wait in the queue; the chat
default target (first response within a minute) puts them at risk at once and breached a minute
later; VIP tickets follow the demo VIP policy and escalate at half their target. Tagged ``demo``;
fixed external ids make a second ``--demo`` start change nothing.
"""

from __future__ import annotations

import logging
from typing import Any

import httpx

log = logging.getLogger("ticketflow.demo")

CUSTOMERS = ("Sam Reed", "Priya Shah", "Lee Wong", "Maria Rossi")
TICKETS: list[dict[str, Any]] = [
    *(
        {"subject": subject, "channel": "chat", "priority": "high"}
        for subject in (
            "Checkout button does nothing",
            "Can't log in after password reset",
            "Order arrived damaged",
            "Promo code rejected",
            "App crashes on start",
            "Where is my parcel?",
            "Change delivery address",
            "Card declined twice",
        )
    ),
    {"subject": "Refund for a double charge", "channel": "email", "tier": "vip"},
    {"subject": "Account locked before a launch", "channel": "phone", "tier": "vip"},
    {"subject": "Invoice shows the wrong VAT number", "channel": "email", "priority": "normal"},
    {"subject": "Feature request: dark mode", "channel": "web", "priority": "low"},
]


async def seed_tickets(client: httpx.AsyncClient, router_url: str) -> int:
    """Create the demo tickets that are missing; returns how many were created."""
    created = 0
    for number, ticket in enumerate(TICKETS, start=1):
        name = CUSTOMERS[number % len(CUSTOMERS)]
        body = {
            "external_id": f"demo-console-{number}",
            "subject": ticket["subject"],
            "channel": ticket["channel"],
            "requester": {
                "email": f"customer{number}@example.com",
                "name": name,
                "tier": ticket.get("tier", "standard"),
            },
            "tags": ["demo"],
        }
        if "priority" in ticket:
            body["priority"] = ticket["priority"]
        response = await client.post(f"{router_url.rstrip('/')}/v1/tickets", json=body)
        if response.status_code == 409:  # seeded by an earlier --demo start
            continue
        response.raise_for_status()
        created += 1
    log.info("demo console tickets seeded: %d new", created)
    return created
