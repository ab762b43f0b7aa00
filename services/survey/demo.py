"""Demo survey policies for ``ticketflow dev --demo``, created through the public API."""

from __future__ import annotations

import httpx

DEMO_POLICIES: list[dict[str, object]] = [
    {
        "name": "Customer effort after chat",
        "kind": "ces",
        "position": 10,
        "conditions": {"all": [{"field": "channel", "op": "eq", "value": "chat"}]},
        "delay_minutes": 0,
        "cooldown_days": 7,
        "sample_rate": 1.0,
        "expires_after_hours": 72,
        "question": "How easy was it to get your issue resolved today?",
    },
    {
        "name": "Satisfaction after email",
        "kind": "csat",
        "position": 20,
        "conditions": {"all": [{"field": "channel", "op": "eq", "value": "email"}]},
        # Short, so a newcomer sees the survey of a ticket they just solved within a minute.
        "delay_minutes": 1,
        "cooldown_days": 7,
        "sample_rate": 1.0,
        "expires_after_hours": 168,
        "question": "How would you rate the support you received?",
    },
]


async def seed(client: httpx.AsyncClient, survey_url: str) -> None:
    """Create the demo policies unless policies with their names already exist."""
    base = survey_url.rstrip("/")
    listed = await client.get(f"{base}/v1/survey-policies", params={"limit": 500})
    listed.raise_for_status()
    existing = {item["name"] for item in listed.json()["items"]}
    for policy in DEMO_POLICIES:
        if policy["name"] in existing:
            continue
        response = await client.post(f"{base}/v1/survey-policies", json=policy)
        response.raise_for_status()
