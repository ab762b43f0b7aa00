"""Demo data for ``ticketflow dev --demo``: a business-hours calendar and SLA policies.

Seeded through the public API, as an admin would; running it again changes nothing (items are
found by name). Chat tickets keep the built-in default (first response within a minute).
"""

from __future__ import annotations

from datetime import date
from typing import Any

import httpx

CALENDAR_NAME = "London office (demo)"
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri")
# minutes per metric for each priority, in business time
TARGETS: dict[str, dict[str, int]] = {
    "urgent": {"first_response": 30, "next_response": 60, "resolution": 4 * 60},
    "high": {"first_response": 60, "next_response": 2 * 60, "resolution": 8 * 60},
    "normal": {"first_response": 4 * 60, "next_response": 4 * 60, "resolution": 16 * 60},
    "low": {"first_response": 8 * 60, "next_response": 8 * 60, "resolution": 40 * 60},
}


def _holidays(today: date) -> list[str]:
    days = []
    for year in (today.year, today.year + 1):
        days += [f"{year}-01-01", f"{year}-12-25", f"{year}-12-26"]
    return days


async def _find(client: httpx.AsyncClient, url: str, name: str) -> dict[str, Any] | None:
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 500}
        if cursor:
            params["cursor"] = cursor
        response = await client.get(url, params=params)
        response.raise_for_status()
        page = response.json()
        for item in page["items"]:
            if item["name"] == name:
                return dict(item)
        cursor = page.get("next_cursor")
        if not cursor:
            return None


async def _ensure(client: httpx.AsyncClient, url: str, body: dict[str, Any]) -> dict[str, Any]:
    existing = await _find(client, url, body["name"])
    if existing is not None:
        return existing
    response = await client.post(url, json=body)
    response.raise_for_status()
    return dict(response.json())


async def seed(client: httpx.AsyncClient, sla_url: str) -> None:
    """Create the demo calendar and policies on the sla service at ``sla_url`` (idempotent)."""
    base = sla_url.rstrip("/")
    calendar = await _ensure(
        client,
        f"{base}/v1/calendars",
        {
            "name": CALENDAR_NAME,
            "timezone": "Europe/London",
            "hours": {day: [["09:00", "12:00"], ["13:00", "17:00"]] for day in WEEKDAYS},
            "holidays": _holidays(date.today()),
        },
    )
    await _ensure(
        client,
        f"{base}/v1/sla-policies",
        {
            "name": "VIP customers, around the clock (demo)",
            "position": 0,
            "conditions": {"all": [{"field": "requester.tier", "op": "eq", "value": "vip"}]},
            "targets": [
                {"priority": p, "metric": m, "minutes": max(1, minutes // 4), "calendar_id": None}
                for p, per_metric in TARGETS.items()
                for m, minutes in per_metric.items()
            ],
            "warn_at": [0.5, 0.8],
            "escalations": [
                {
                    "metric": "first_response",
                    "level": 1,
                    "when": "warning",
                    "actions": {"notify": ["vip-desk@example.com"]},
                },
            ],
        },
    )
    await _ensure(
        client,
        f"{base}/v1/sla-policies",
        {
            "name": "Email and web, office hours (demo)",
            "position": 10,
            "conditions": {
                "all": [{"field": "channel", "op": "in", "value": ["email", "web", "api"]}]
            },
            "targets": [
                {"priority": p, "metric": m, "minutes": minutes, "calendar_id": calendar["id"]}
                for p, per_metric in TARGETS.items()
                for m, minutes in per_metric.items()
            ],
            "warn_at": [0.75, 0.9],
            "pause_statuses": ["pending", "on_hold"],
            "escalations": [
                {
                    "metric": "first_response",
                    "level": 1,
                    "when": "warning",
                    "actions": {"notify": ["team-lead@example.com"]},
                },
                {
                    "metric": "first_response",
                    "level": 2,
                    "when": "breach",
                    "actions": {"set_priority": "urgent", "set_group": "escalations"},
                },
                {
                    "metric": "resolution",
                    "level": 1,
                    "when": "breach",
                    "actions": {"notify": ["support-manager@example.com"]},
                },
            ],
        },
    )
