"""The HTTP contract on the embedded stack (SQLite + in-memory bus): auth, errors, flow."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import READER_KEY, eventually

TICKET = {"subject": "Hello", "channel": "chat", "requester": {"id": "cust-1", "tier": "premium"}}


def assert_error(response: httpx.Response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert isinstance(body["error"]["details"], list)
    return dict(body["error"])


async def test_health_ready_metrics_and_openapi(embedded: dict[str, httpx.AsyncClient]) -> None:
    for name, client in embedded.items():
        assert (await client.get("/healthz")).json()["service"] == name
        assert (await client.get("/readyz")).json()["status"] == "ready"
        metrics = await client.get("/metrics")
        assert "ticketflow_http_requests_total" in metrics.text
        assert (await client.get("/openapi.json")).status_code == 200


async def test_auth(embedded: dict[str, httpx.AsyncClient]) -> None:
    router = embedded["router"]
    assert_error(
        await router.get("/v1/tickets", headers={"Authorization": ""}), 401, "unauthorized"
    )
    assert_error(
        await router.get("/v1/tickets", headers={"Authorization": "Bearer nope"}),
        401,
        "unauthorized",
    )
    reader = {"Authorization": f"Bearer {READER_KEY}"}
    assert (await router.get("/v1/tickets", headers=reader)).status_code == 200
    assert_error(await router.post("/v1/tickets", json=TICKET, headers=reader), 403, "forbidden")


async def test_validation_errors_name_the_field(embedded: dict[str, httpx.AsyncClient]) -> None:
    router = embedded["router"]
    error = assert_error(
        await router.post("/v1/tickets", json={**TICKET, "channel": "fax"}), 422, "validation_error"
    )
    assert error["details"][0]["field"] == "channel"
    error = assert_error(
        await router.post("/v1/tickets", json={**TICKET, "requester": {"name": "x"}}),
        422,
        "validation_error",
    )
    assert error["details"][0]["field"].startswith("requester")
    error = assert_error(
        await router.post("/v1/tickets", json={**TICKET, "subject": "a\x00b"}),
        422,
        "validation_error",
    )
    assert error["details"][0]["field"] == "subject"
    malformed = await router.post(
        "/v1/tickets", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert_error(malformed, 422, "validation_error")
    assert_error(
        await router.patch("/v1/tickets/api:nope", json={"status": "solved"}), 404, "not_found"
    )
    assert_error(await router.patch("/v1/tickets/api:nope", json={}), 422, "validation_error")
    assert_error(await router.get("/v1/tickets", params={"cursor": "!!"}), 400, "bad_request")
    assert_error(await router.get("/v1/tickets", params={"limit": 0}), 422, "validation_error")
    too_big = await router.post(
        "/v1/tickets",
        content=b"x" * (1024 * 1024 + 1),
        headers={"content-type": "application/json"},
    )
    assert_error(too_big, 413, "payload_too_large")
    assert_error(await router.get("/v1/nothing-here"), 404, "not_found")


async def test_duplicate_external_id_conflicts(embedded: dict[str, httpx.AsyncClient]) -> None:
    router = embedded["router"]
    assert (
        await router.post("/v1/tickets", json={**TICKET, "external_id": "dup-1"})
    ).status_code == 201
    assert_error(
        await router.post("/v1/tickets", json={**TICKET, "external_id": "dup-1"}), 409, "conflict"
    )


async def test_embedded_flow_and_pagination(embedded: dict[str, httpx.AsyncClient]) -> None:
    router, sla, survey = embedded["router"], embedded["sla"], embedded["survey"]
    await router.put(
        "/v1/agents/a1", json={"name": "A1", "capacity": {"chat": 2}, "status": "online"}
    )
    await router.put(
        "/v1/agents/a2", json={"name": "A2", "capacity": {"chat": 2}, "status": "online"}
    )
    ids = []
    for n in range(5):
        response = await router.post("/v1/tickets", json={**TICKET, "subject": f"t{n}"})
        assert response.status_code == 201
        ids.append(response.json()["id"])
    tickets = {
        t["id"]: t for t in (await router.get("/v1/tickets", params={"limit": 500})).json()["items"]
    }
    assignees = [tickets[i]["assignee_id"] for i in ids]
    assert sorted(a for a in assignees if a) == ["a1", "a1", "a2", "a2"], "capacity 2 each, spread"
    assert assignees[4] is None, "the fifth waits for capacity"

    agents = {a["id"]: a for a in (await router.get("/v1/agents")).json()["items"]}
    assert agents["a1"]["load"] == {"chat": 2}

    # Solving one frees capacity: the waiting ticket is assigned at once.
    first = ids[0]
    await router.patch(f"/v1/tickets/{first}", json={"status": "solved"})
    waiting = (await router.get(f"/v1/tickets/{ids[4]}")).json()
    assert waiting["assignee_id"] == assignees[0]

    page1 = await router.get("/v1/tickets", params={"limit": 2})
    page2 = await router.get(
        "/v1/tickets", params={"limit": 2, "cursor": page1.json()["next_cursor"]}
    )
    seen = [t["id"] for t in page1.json()["items"] + page2.json()["items"]]
    assert len(set(seen)) == 4

    async def timers() -> list | None:
        response = await sla.get(f"/v1/tickets/{ids[1]}/sla")
        return response.json()["timers"] if response.status_code == 200 else None

    assert {t["metric"] for t in await eventually(timers)} == {"first_response", "resolution"}

    async def scheduled() -> list:
        return list((await survey.get("/v1/surveys", params={"ticket_id": first})).json()["items"])

    assert (await eventually(scheduled))[0]["status"] == "scheduled"


@pytest.mark.parametrize("status", ["pending", "solved"])
async def test_customer_reply_reopens(embedded: dict[str, httpx.AsyncClient], status: str) -> None:
    router = embedded["router"]
    ticket = (await router.post("/v1/tickets", json=TICKET)).json()
    await router.patch(f"/v1/tickets/{ticket['id']}", json={"status": status})
    await router.post(
        f"/v1/tickets/{ticket['id']}/messages", json={"author": "customer", "body": "still broken"}
    )
    assert (await router.get(f"/v1/tickets/{ticket['id']}")).json()["status"] == "open"
