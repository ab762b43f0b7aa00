"""What the console reads through public APIs, with the signed-in viewer's own key.

- agents (capacity, status) and a ticket's routing history: router's ``/v1/agents`` and
  ``/v1/tickets/{id}`` at ``TICKETFLOW_ROUTER_URL``;
- survey results: survey's ``/v1/surveys?ticket_id=`` at ``TICKETFLOW_SURVEY_URL``;
XXDEL
  in-process through the app, so the console depends only on their public shapes.

A service that cannot be reached makes its part of the page say so; it never fails the page.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from urllib.parse import quote

import httpx

log = logging.getLogger(__name__)

TIMEOUT = httpx.Timeout(5.0, connect=2.0)
MAX_AGENTS = 2000


class Unavailable(Exception):
    """An upstream API answered with an error or could not be reached."""


def segment(value: str) -> str:
    """``value`` as one URL path segment (ticket ids keep their ``:``)."""
    return quote(value, safe=":@")


def client_for(key: str, base_url: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=base_url.rstrip("/"),
        headers={"Authorization": f"Bearer {key}"},
        timeout=TIMEOUT,
    )


async def get_json(client: httpx.AsyncClient, path: str, **params: Any) -> Any:
    try:
        response = await client.get(path, params=params or None)
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        raise Unavailable(f"{client.base_url}{path}: {exc.__class__.__name__}") from exc
    if response.status_code == 404:
        return None
    if response.status_code >= 400:
        raise Unavailable(f"{client.base_url}{path}: HTTP {response.status_code}")
    return response.json()


async def agents(router_url: str, key: str) -> list[dict[str, Any]]:
    """Every agent (paged through), as router's ``GET /v1/agents`` gives them."""
    items: list[dict[str, Any]] = []
    async with client_for(key, router_url) as client:
        cursor: str | None = None
        while len(items) < MAX_AGENTS:
            params: dict[str, Any] = {"limit": 500}
            if cursor:
                params["cursor"] = cursor
            page = await get_json(client, "/v1/agents", **params)
            if not page:
                break
            items += page.get("items", [])
            cursor = page.get("next_cursor")
            if not cursor:
                break
    return items


async def ticket_and_surveys(
    router_url: str, survey_url: str, key: str, ticket_id: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Router's ticket (with ``routing_history``) and survey's surveys of the ticket, each as
    ``{"available": bool, ...}``."""

    async def ticket() -> dict[str, Any]:
        try:
            async with client_for(key, router_url) as client:
                body = await get_json(client, f"/v1/tickets/{segment(ticket_id)}")
            return {"available": True, "ticket": body}
        except Unavailable as exc:
            return {"available": False, "reason": str(exc)}

    async def surveys() -> dict[str, Any]:
        try:
            async with client_for(key, survey_url) as client:
                body = await get_json(client, "/v1/surveys", ticket_id=ticket_id)
            return {"available": True, "items": (body or {}).get("items", [])}
        except Unavailable as exc:
            return {"available": False, "reason": str(exc)}

    found, answered = await asyncio.gather(ticket(), surveys())
    return found, answered
