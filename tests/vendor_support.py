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
