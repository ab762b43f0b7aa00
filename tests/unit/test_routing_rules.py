"""Routing rules: pure evaluation, save-time validation and the rules at work on SQLite."""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.router.app import create_app
from services.router.rules import Rule, RuleActions, evaluate
from shared import events as ev
from shared.bus import MemoryBus
from shared.conditions import Conditions
from shared.migrate import upgrade_all
from tests.conftest import eventually, make_settings, running


def rule(
    rule_id: str, position: int, conditions: dict, actions: dict, enabled: bool = True
) -> Rule:
    return Rule(
        id=rule_id,
        name=f"rule {rule_id}",
        position=position,
        enabled=enabled,
        conditions=Conditions.model_validate(conditions),
        actions=RuleActions.model_validate(actions),
    )


TICKET = {
    "subject": "Refund for invoice 42",
    "channel": "email",
    "priority": "normal",
    "group": None,
    "tags": ["web"],
    "requester": {"tier": "vip"},
    "custom_fields": {"plan": "gold"},
}


def test_rules_run_in_position_order_and_later_rules_see_earlier_changes() -> None:
    rules = [
        rule(
            "b",
            2,
            {"all": [{"field": "priority", "op": "eq", "value": "urgent"}]},
            {"add_tags": ["vip-urgent"], "set_group": "tier2"},
        ),
        rule(
            "a",
            1,
            {"all": [{"field": "requester.tier", "op": "eq", "value": "vip"}]},
            {"set_priority": "urgent"},
        ),
        rule(
            "c",
            3,
            {"all": [{"field": "subject", "op": "matches", "value": "(?i)refund|invoice"}]},
            {"require_skills": ["billing"], "set_group": "billing"},
        ),
        rule("d", 0, {"all": []}, {"set_priority": "low"}, enabled=False),
    ]
    outcome = evaluate(rules, TICKET)
    assert outcome.priority == "urgent"
    assert outcome.group == "billing"
    assert outcome.tags == ["web", "vip-urgent"]
    assert outcome.required_skills == ["billing"]
    assert [a.rule_id for a in outcome.applied] == ["a", "b", "c"]
    assert outcome.applied[0].changes == {"priority": ["normal", "urgent"]}


@given(st.sampled_from(["low", "normal", "high", "urgent"]), st.booleans())
def test_evaluation_is_idempotent(priority: str, vip: bool) -> None:
    rules = [
        rule(
            "a",
            1,
            {"all": [{"field": "requester.tier", "op": "eq", "value": "vip"}]},
            {"set_priority": "urgent", "add_tags": ["vip"]},
        ),
    ]
    doc = {**TICKET, "priority": priority, "requester": {"tier": "vip" if vip else "standard"}}
    first = evaluate(rules, doc)
    again = evaluate(rules, {**doc, "priority": first.priority, "tags": first.tags})
    assert again.applied == []
    assert (again.priority, again.tags) == (first.priority, first.tags)


@pytest.fixture
async def router(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'router.db'}"
    await upgrade_all(url, ("router",))
    bus = MemoryBus()
    await bus.start()
    try:
        async with running(create_app(make_settings(url), bus=bus)) as client:
            for agent_id, groups, skills in (
                ("ana", ["support"], ["billing"]),
                ("ben", ["support", "tier2"], ["api"]),
            ):
                response = await client.put(
                    f"/v1/agents/{agent_id}",
                    json={
                        "name": agent_id,
                        "groups": groups,
                        "skills": skills,
                        "capacity": {"email": 5, "chat": 1},
                        "status": "online",
                    },
                )
                assert response.status_code == 201, response.text
            yield client
            # Let the outbox relay go idle: stopping it mid-publish hangs shutdown (see report).
            await asyncio.sleep(0.5)
    finally:
        await bus.stop()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"conditions": {"all": [{"field": "nope", "op": "eq", "value": 1}]}}, "conditions"),
        (
            {"conditions": {"all": [{"field": "subject", "op": "matches", "value": "("}]}},
            "conditions",
        ),
        ({"actions": {"set_group": "nobody-here"}}, "actions.set_group"),
        ({"actions": {"require_skills": ["klingon"]}}, "actions.require_skills"),
        ({"actions": {"set_priority": "critical"}}, "actions.set_priority"),
        ({"actions": {}}, "actions"),
        ({"extra": 1}, "extra"),
    ],
)
async def test_bad_rules_get_422_naming_the_problem(
    router: httpx.AsyncClient, body: dict, field: str
) -> None:
    rule_body = {"name": "bad", "actions": {"set_priority": "high"}, **body}
    response = await router.post("/v1/routing-rules", json=rule_body)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert any(field in str(d.get("field", "")) for d in error["details"]), error


async def test_rules_crud_and_routing_with_required_skills(router: httpx.AsyncClient) -> None:
    created = await router.post(
        "/v1/routing-rules",
        json={
            "name": "billing",
            "position": 2,
            "conditions": {
                "any": [{"field": "subject", "op": "matches", "value": "(?i)refund|invoice"}]
            },
            "actions": {"require_skills": ["billing"], "add_tags": ["billing"]},
        },
    )
    assert created.status_code == 201, created.text
    rule_id = created.json()["id"]
    vip = await router.post(
        "/v1/routing-rules",
        json={
            "name": "vip",
            "position": 1,
            "conditions": {"all": [{"field": "requester.tier", "op": "eq", "value": "vip"}]},
            "actions": {"set_priority": "urgent"},
        },
    )
    assert vip.status_code == 201
    listed = (await router.get("/v1/routing-rules")).json()["items"]
    assert [r["name"] for r in listed] == ["vip", "billing"]

    for _ in range(3):
        ticket = await router.post(
            "/v1/tickets",
            json={
                "external_id": uuid.uuid4().hex,
                "subject": "Refund please",
                "channel": "email",
                "requester": {"email": "vip@example.com", "tier": "vip"},
            },
        )
        assert ticket.status_code == 201, ticket.text
        body = ticket.json()
        assert body["assignee_id"] == "ana"  # only ana has billing
        assert body["priority"] == "urgent" and "billing" in body["tags"]
        reasons = [d["reason"] for d in body["routing_history"]]
        assert f"rule:billing ({rule_id})" in reasons and reasons[-1] in (
            "least_loaded",
            "returning_customer",
        )

    # ana offline: a new billing ticket waits, then goes to her when she comes back.
    assert (await router.patch("/v1/agents/ana", json={"status": "offline"})).status_code == 200
    waiting = await router.post(
        "/v1/tickets",
        json={"subject": "Invoice wrong", "channel": "email", "requester": {"email": "x@y.z"}},
    )
    assert waiting.json()["assignee_id"] is None
    assert (await router.patch("/v1/agents/ana", json={"status": "online"})).status_code == 200
    again = await router.get(f"/v1/tickets/{waiting.json()['id']}")
    assert again.json()["assignee_id"] == "ana"

    put = await router.put(
        f"/v1/routing-rules/{rule_id}",
        json={"name": "billing2", "position": 3, "enabled": False, "actions": {"add_tags": ["x"]}},
    )
    assert put.status_code == 200 and put.json()["enabled"] is False
    assert (await router.delete(f"/v1/routing-rules/{rule_id}")).status_code == 204
    assert (await router.get(f"/v1/routing-rules/{rule_id}")).status_code == 404


async def test_demo_rules_seed_idempotently_and_route(router: httpx.AsyncClient) -> None:
    from services.router import demo

    await demo.seed(router, "")
    await demo.seed(router, "")
    rules = (await router.get("/v1/routing-rules")).json()["items"]
    assert [r["name"] for r in rules] == [r["name"] for r in demo.RULES]
    ticket = await router.post(
        "/v1/tickets",
        json={
            "subject": "Where is my REFUND?",
            "channel": "chat",
            "requester": {"email": "v@x.io", "tier": "vip"},
        },
    )
    body = ticket.json()
    assert (body["priority"], body["group"], body["assignee_id"]) == ("urgent", "support", "ana")
    assert body["tags"] == ["vip", "billing"]


async def test_rule_changes_are_emitted_with_the_rule_as_reason(
    router: httpx.AsyncClient, tmp_path: Path
) -> None:
    rule = await router.post(
        "/v1/routing-rules",
        json={
            "name": "vip",
            "conditions": {"all": [{"field": "requester.tier", "op": "eq", "value": "vip"}]},
            "actions": {"set_priority": "high", "add_tags": ["vip"], "set_group": "tier2"},
        },
    )
    assert rule.status_code == 201
    ticket = (
        await router.post(
            "/v1/tickets",
            json={"subject": "Hi", "channel": "chat", "requester": {"id": "v1", "tier": "vip"}},
        )
    ).json()
    assert ticket["assignee_id"] == "ben"  # the only agent of tier2
    with sqlite3.connect(tmp_path / "router-router.db") as db:
        rows = db.execute("SELECT value FROM outbox WHERE key = ? ORDER BY id", (ticket["id"],))
        events = [ev.parse_event(ev.decode(value)) for (value,) in rows.fetchall()]
    types = [e.type for e in events]
    assert types == ["ticket.created", "ticket.updated", "ticket.prioritized", "ticket.assigned"]
    updated, prioritized = events[1], events[2]
    assert isinstance(updated, ev.TicketUpdated) and isinstance(prioritized, ev.TicketPrioritized)
    assert updated.changes == {
        "priority": ["normal", "high"],
        "group": [None, "tier2"],
        "tags": [[], ["vip"]],
    }
    assert prioritized.reason == "rule:vip" and prioritized.previous_priority == "normal"


async def test_rules_run_again_when_an_inbound_update_changes_their_inputs(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'inbound.db'}"
    await upgrade_all(url, ("router",))
    bus = MemoryBus()
    await bus.start()
    settings = make_settings(url)
    try:
        async with running(create_app(settings, bus=bus)) as client:
            agent = {"name": "ana", "skills": ["billing"], "capacity": {"email": 5}}
            assert (await client.put("/v1/agents/ana", json=agent)).status_code == 201
            rule = {
                "name": "billing",
                "conditions": {"all": [{"field": "subject", "op": "contains", "value": "refund"}]},
                "actions": {"require_skills": ["billing"], "set_priority": "high"},
            }
            assert (await client.post("/v1/routing-rules", json=rule)).status_code == 201

            async def upsert(subject: str, minute: int) -> None:
                event = ev.TicketUpsert(
                    source="zendesk",
                    external_id="77",
                    occurred_at=datetime(2026, 1, 1, 9, minute, tzinfo=UTC),
                    ticket=ev.InboundTicket(subject=subject, channel="email"),
                )
                key, value, headers = ev.encode(event, source="test")
                await bus.publish(settings.topic("inbound"), key, value, headers)

            async def ticket() -> dict[str, Any] | None:
                response = await client.get("/v1/tickets/zendesk:77")
                return dict(response.json()) if response.status_code == 200 else None

            await upsert("Hello", 0)
            first = await eventually(ticket)
            assert first["priority"] == "normal"
            await upsert("About my refund", 1)

            async def reprioritized() -> dict[str, Any] | None:
                body = await ticket()
                return body if body and body["priority"] == "high" else None

            body = await eventually(reprioritized)
            assert any(d["reason"].startswith("rule:billing") for d in body["routing_history"])
            await asyncio.sleep(0.5)  # let the relay go idle before shutdown
    finally:
        await bus.stop()
