"""The vendor-fidelity scenario both modes run: embedded (SQLite + in-memory bus) in
tests/unit and PostgreSQL + a Kafka-protocol broker in tests/integration."""

from __future__ import annotations

from typing import Any

import httpx

from tests.conftest import READER_KEY, eventually
from tests.intake_support import encode, fixture, jira_now, signed, unique_id, with_ticket


async def _post(http: httpx.AsyncClient, provider: str, data: dict[str, Any]) -> httpx.Response:
    body = encode(data)
    return await http.post(f"/v1/webhooks/{provider}", content=body, headers=signed(provider, body))


async def _stored(http: httpx.AsyncClient, ticket_id: str) -> dict[str, Any] | None:
    response = await http.get(f"/v1/tickets/{ticket_id}")
    return response.json() if response.status_code == 200 else None


async def vendor_values_never_refuse_a_ticket(http: httpx.AsyncClient) -> None:
    """Custom vendor values are accepted with safe defaults and kept raw; an admin's mapping
    then applies to later deliveries; a body of another format is still a 422."""
    # Freshdesk "simple" placeholders and a custom status: accepted, raw value kept.
    external = unique_id("F")
    data = with_ticket("freshdesk", fixture("freshdesk_simple_placeholders"), external)
    response = await _post(http, "freshdesk", data)
    assert response.status_code == 202, response.text
    ticket = await eventually(lambda: _stored(http, f"freshdesk:{external}"))
    assert (ticket["status"], ticket["source_status"]) == ("open", "Awaiting parts")
    assert (ticket["priority"], ticket["source_priority"]) == ("high", "High")
    assert ticket["requester"]["email"] == "bob@example.com"
    assert ticket["requester"]["name"] == "Bob Requester"

    # Jira Service Management: P1, "Waiting for support" is the agent's turn.
    key = unique_id("HELP-")
    jira = jira_now(with_ticket("jira", fixture("jira_jsm_issue_created_p1"), key))
    assert (await _post(http, "jira", jira)).status_code == 202
    issue = await eventually(lambda: _stored(http, f"jira:{key}"))
    assert (issue["status"], issue["priority"]) == ("open", "urgent")
    assert (issue["source_status"], issue["source_priority"]) == ("Waiting for support", "P1")

    # Zendesk: web_service is the API channel; a custom status label is kept raw.
    zid = unique_id("9")
    zendesk = with_ticket("zendesk", fixture("zendesk_custom_status_web_service"), zid)
    assert (await _post(http, "zendesk", zendesk)).status_code == 202
    zticket = await eventually(lambda: _stored(http, f"zendesk:{zid}"))
    assert (zticket["channel"], zticket["status"]) == ("api", "open")
    assert zticket["source_status"] == "Awaiting vendor"

    # An admin maps the custom status; a reader may look but not change.
    reader = {"Authorization": f"Bearer {READER_KEY}"}
    mapping = {"status": {"Awaiting parts": "on_hold"}, "priority": {"Urgent-ish": "urgent"}}
    refused = await http.put("/v1/providers/freshdesk/mappings", json=mapping, headers=reader)
    assert refused.status_code == 403
    stored = await http.put("/v1/providers/freshdesk/mappings", json=mapping)
    assert stored.status_code == 200, stored.text
    read = (await http.get("/v1/providers/freshdesk/mappings", headers=reader)).json()
    assert read["status"] == {"Awaiting parts": "on_hold"}
    assert read["priority"] == {"Urgent-ish": "urgent"}
    bad = await http.put("/v1/providers/freshdesk/mappings", json={"status": {"x": "snoozed"}})
    assert bad.status_code == 422
    assert (await http.get("/v1/providers/nowhere/mappings")).status_code == 404

    second = unique_id("F")
    data = with_ticket("freshdesk", fixture("freshdesk_simple_placeholders"), second)
    data["freshdesk_webhook"]["ticket_priority"] = "Urgent-ish"
    assert (await _post(http, "freshdesk", data)).status_code == 202
    mapped = await eventually(lambda: _stored(http, f"freshdesk:{second}"))
    assert (mapped["status"], mapped["priority"]) == ("on_hold", "urgent")
    assert mapped["source_priority"] == "Urgent-ish"

    # Not the vendor's format at all: still refused, naming the field.
    wrong = await _post(http, "freshdesk", {"ticket": {"id": 1}})
    assert wrong.status_code == 422
    assert "freshdesk_webhook" in wrong.text


async def _sla_timers(sla: httpx.AsyncClient, ticket_id: str) -> dict[str, dict[str, Any]]:
    response = await sla.get(f"/v1/tickets/{ticket_id}/sla")
    if response.status_code != 200:
        return {}
    return {t["metric"]: t for t in response.json()["timers"]}


async def sla_and_survey_semantics(clients: dict[str, httpx.AsyncClient]) -> None:
    """Through the three real services: first response does not pause on pending by default,
    a sent survey has its link without a configured secret, a customer's reply to a solved
    ticket starts next response, resumes resolution and counts as a reopen, and the report
    gives times in seconds."""
    router, sla, survey = clients["router"], clients["sla"], clients["survey"]
    group = unique_id("grp-")
    policy = await survey.post(
        "/v1/survey-policies",
        json={
            "name": f"now {group}",
            "kind": "csat",
            "position": 0,
            "conditions": {"all": [{"field": "group", "op": "eq", "value": group}]},
            "delay_minutes": 0,
            "cooldown_days": 0,
            "sample_rate": 1.0,
            "expires_after_hours": 24,
            "question": "How did we do?",
        },
    )
    assert policy.status_code == 201, policy.text
    created = await router.post(
        "/v1/tickets",
        json={
            "subject": "Cannot print",
            "channel": "email",
            "requester": {"email": f"{group}@example.com"},
            "group": group,
        },
    )
    assert created.status_code == 201, created.text
    tid = created.json()["id"]

    await router.patch(f"/v1/tickets/{tid}", json={"status": "pending"})

    async def first_running_resolution_paused() -> dict[str, Any] | None:
        timers = await _sla_timers(sla, tid)
        paused = timers.get("resolution", {}).get("status") == "paused"
        return timers if paused else None

    timers = await eventually(first_running_resolution_paused)
    assert timers["first_response"]["status"] == "running"

    reply = {"author": "agent", "public": True, "body": "Try the other tray."}
    assert (await router.post(f"/v1/tickets/{tid}/messages", json=reply)).status_code == 201
    assert (await router.patch(f"/v1/tickets/{tid}", json={"status": "solved"})).status_code == 200

    async def sent() -> dict[str, Any] | None:
        items = (await survey.get("/v1/surveys", params={"ticket_id": tid})).json()["items"]
        return items[0] if items and items[0]["status"] == "sent" else None

    assert (await eventually(sent))["token_url"], "a sent survey always has its link"

    async def resolution_met() -> bool:
        return (await _sla_timers(sla, tid)).get("resolution", {}).get("status") == "met"

    await eventually(resolution_met)
    said = {"author": "customer", "public": True, "body": "Still jammed."}
    assert (await router.post(f"/v1/tickets/{tid}/messages", json=said)).status_code == 201
    assert (await router.get(f"/v1/tickets/{tid}")).json()["status"] == "open"

    async def reopened() -> dict[str, Any] | None:
        timers = await _sla_timers(sla, tid)
        running = {m for m, t in timers.items() if t["status"] == "running"}
        return timers if {"next_response", "resolution"} <= running else None

    await eventually(reopened)

    async def report() -> dict[str, Any] | None:
        response = await sla.get(
            "/v1/reports/sla", params={"from": "2000-01-01T00:00:00Z", "group_by": "group"}
        )
        rows = [r for r in response.json()["groups"] if r["group"] == group]
        return rows[0] if rows and rows[0]["reopen_pct"] == 100.0 else None

    row = await eventually(report)
    assert row["first_response_seconds"]["median"] is not None
    assert set(row["resolution_seconds"]) == {"median", "p90"}
