"""One keyset pagination for every list endpoint: bad cursors are a 400 naming ``cursor``, and
paging through a list returns every item exactly once, in the order of the unpaged list."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from shared.pagination import encode_cursor

SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()


def _token(values: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


BAD_CURSORS = [
    "!!",  # not base64
    _token({"a": 1}),  # JSON, but not a sort key
    encode_cursor(),  # no values
    encode_cursor("x", "y", "z", "w"),  # more values than any list's key
    encode_cursor(True, 1.5),  # neither a time, a number nor an id of the right kind
    encode_cursor("2026-11-30T10:00:00", "id"),  # a time without an offset
    "A" * 600,  # longer than any cursor we hand out
]


async def _list_paths(embedded: dict[str, httpx.AsyncClient]) -> list[tuple[str, str]]:
    created = await embedded["sla"].post(
        "/v1/webhook-subscriptions",
        json={"url": "http://127.0.0.1:9/hook", "event_types": ["sla.met"], "secret": SECRET},
    )
    assert created.status_code == 201, created.text
    subscription = created.json()["id"]
    return [
        ("router", "/v1/tickets"),
        ("router", "/v1/agents"),
        ("router", "/v1/routing-rules"),
        ("router", "/v1/tickets/api:anything/deliveries"),
        ("sla", "/v1/calendars"),
        ("sla", "/v1/sla-policies"),
        ("sla", "/v1/breaches"),
        ("sla", "/v1/at-risk"),
        ("sla", "/v1/webhook-subscriptions"),
        ("sla", f"/v1/webhook-subscriptions/{subscription}/deliveries"),
        ("survey", "/v1/surveys"),
        ("survey", "/v1/survey-policies"),
    ]


async def test_a_bad_cursor_is_a_400_naming_it_on_every_list(
    embedded: dict[str, httpx.AsyncClient],
) -> None:
    for service, path in await _list_paths(embedded):
        first = await embedded[service].get(path)
        assert first.status_code == 200, (path, first.text)
        assert set(first.json()) == {"items", "next_cursor"}, path
        for cursor in BAD_CURSORS:
            response = await embedded[service].get(path, params={"cursor": cursor})
            assert response.status_code == 400, (path, cursor, response.text)
            error = response.json()["error"]
            assert error["code"] == "bad_request"
            assert error["message"].startswith("cursor:")
            assert [d["field"] for d in error["details"]] == ["cursor"], (path, error)


async def _page_through(client: httpx.AsyncClient, path: str, limit: int) -> list[str]:
    ids: list[str] = []
    cursor: str | None = None
    for _ in range(100):
        params: dict[str, Any] = {"limit": limit}
        if cursor:
            params["cursor"] = cursor
        response = await client.get(path, params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page["items"]) <= limit
        ids.extend(item["id"] for item in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            return ids
        assert page["items"], "a page with a next cursor is never empty"
    raise AssertionError("paging did not end")


def _ticket(n: int) -> tuple[str, dict[str, Any]]:
    body = {"subject": f"t{n}", "channel": "email", "requester": {"id": f"pager-{n}"}}
    return "/v1/tickets", body


def _rule(n: int) -> tuple[str, dict[str, Any]]:
    # Positions repeat: ties are broken by id, so no rule is skipped or shown twice.
    body = {"name": f"r{n}", "position": n % 2, "actions": {"add_tags": [f"t{n}"]}}
    return "/v1/routing-rules", body


def _calendar(n: int) -> tuple[str, dict[str, Any]]:
    return "/v1/calendars", {
        "name": f"c{n}",
        "timezone": "UTC",
        "hours": {"mon": [["09:00", "17:00"]]},
    }


def _sla_policy(n: int) -> tuple[str, dict[str, Any]]:
    target = {"priority": "low", "metric": "resolution", "minutes": 60 + n}
    return "/v1/sla-policies", {"name": f"p{n}", "position": n % 3, "targets": [target]}


def _subscription(n: int) -> tuple[str, dict[str, Any]]:
    body = {"url": f"http://127.0.0.1:9/{n}", "event_types": ["sla.met"], "secret": SECRET}
    return "/v1/webhook-subscriptions", body


def _survey_policy(n: int) -> tuple[str, dict[str, Any]]:
    return "/v1/survey-policies", {"name": f"s{n}", "kind": "csat", "position": n % 2}


@pytest.mark.parametrize(
    ("service", "make", "list_path"),
    [
        ("router", _ticket, "/v1/tickets"),
        ("router", _rule, "/v1/routing-rules"),
        ("sla", _calendar, "/v1/calendars"),
        ("sla", _sla_policy, "/v1/sla-policies"),
        ("sla", _subscription, "/v1/webhook-subscriptions"),
        ("survey", _survey_policy, "/v1/survey-policies"),
    ],
)
async def test_paging_yields_every_item_exactly_once(
    embedded: dict[str, httpx.AsyncClient],
    service: str,
    make: Callable[[int], tuple[str, dict[str, Any]]],
    list_path: str,
) -> None:
    client = embedded[service]
    created = set()
    for n in range(7):
        path, body = make(n)
        response = await client.post(path, json=body)
        assert response.status_code == 201, response.text
        created.add(response.json()["id"])
    whole = [
        item["id"] for item in (await client.get(list_path, params={"limit": 500})).json()["items"]
    ]
    assert set(whole) == created
    for limit in (1, 2, 3, 7):
        assert await _page_through(client, list_path, limit) == whole, limit


async def test_agents_page_through_once(embedded: dict[str, httpx.AsyncClient]) -> None:
    router = embedded["router"]
    for n in range(5):
        response = await router.put(f"/v1/agents/pager-{n}", json={"name": f"A{n}"})
        assert response.status_code == 201, response.text
    assert await _page_through(router, "/v1/agents", 2) == [f"pager-{n}" for n in range(5)]
