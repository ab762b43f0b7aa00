"""Webhook intake on PostgreSQL and a real Kafka-protocol broker: stored tickets, events on
the broker, concurrent duplicates, and durability while the broker is down."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer
from sqlalchemy import func, select

from services.router.app import create_app
from services.router.models import WebhookDelivery, outbox
from shared.events import decode
from shared.runtime import CONTRACT_TOPICS
from shared.settings import Settings
from tests.conftest import Broker, eventually, make_settings, running, statements_from
from tests.intake_support import (
    SECRET_SETTINGS,
    encode,
    fixture,
    jira_now,
    signed,
    unique_id,
    with_ticket,
)
from tests.vendor_support import vendor_values_never_refuse_a_ticket


@pytest.fixture
async def router(postgres_url: str, kafka_bootstrap: str) -> AsyncIterator[tuple[Any, Settings]]:
    settings = make_settings(
        postgres_url, kafka_bootstrap_servers=kafka_bootstrap, **SECRET_SETTINGS
    )
    app = create_app(settings)
    async with running(app) as http:
        yield (http, app), settings


async def post(http: httpx.AsyncClient, provider: str, data: dict[str, Any]) -> httpx.Response:
    body = encode(data)
    return await http.post(f"/v1/webhooks/{provider}", content=body, headers=signed(provider, body))


async def events_on(bootstrap: str, topic: str, key: str, want: int) -> list[tuple[str, dict]]:
    """Read ``topic`` from the start until ``want`` events keyed ``key`` are seen."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"probe-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    found: list[tuple[str, dict]] = []
    try:
        async with asyncio.timeout(40):
            while len(found) < want:
                batch = await consumer.getmany(timeout_ms=500)
                for records in batch.values():
                    for record in records:
                        if record.key is not None and record.key.decode() == key:
                            envelope = decode(record.value, record.key)
                            found.append((envelope.type, envelope.data))
    finally:
        await consumer.stop()
    return found


async def test_all_providers_store_tickets_and_publish_events(
    router: tuple[Any, Settings], kafka_bootstrap: str
) -> None:
    (http, _), settings = router
    zd, fd, jira, gen = unique_id("Z"), unique_id("F"), f"HELP-{unique_id()}", unique_id("G")
    deliveries = [
        ("zendesk", with_ticket("zendesk", fixture("zendesk_ticket_created"), zd)),
        ("zendesk", with_ticket("zendesk", fixture("zendesk_comment_added"), zd)),
        ("freshdesk", with_ticket("freshdesk", fixture("freshdesk_ticket_created"), fd)),
        ("freshdesk", with_ticket("freshdesk", fixture("freshdesk_ticket_updated_numeric"), fd)),
        ("jira", jira_now(with_ticket("jira", fixture("jira_issue_created"), jira))),
        ("generic", with_ticket("generic", fixture("generic_upsert"), gen)),
    ]
    for provider, data in deliveries:
        response = await post(http, provider, data)
        assert response.status_code == 202, response.text

    async def get(tid: str, **want: Any) -> dict[str, Any] | None:
        response = await http.get(f"/v1/tickets/{tid}")
        if response.status_code != 200:
            return None
        body: dict[str, Any] = response.json()
        return body if all(body[k] == v for k, v in want.items()) else None

    zendesk = await eventually(lambda: get(f"zendesk:{zd}", priority="urgent"))
    assert zendesk["subject"] == "Help, my printer is on fire!"
    freshdesk = await eventually(lambda: get(f"freshdesk:{fd}", status="solved"))
    assert freshdesk["priority"] == "high" and freshdesk["group"] == "Billing"
    jira_ticket = await eventually(lambda: get(f"jira:{jira}"))
    # JSM "Waiting for support" is the agent's turn: open, timers run.
    assert jira_ticket["status"] == "open" and jira_ticket["tags"] == ["vpn", "network"]
    generic = await eventually(lambda: get(f"acme:{gen}"))
    assert generic["requester"]["tier"] == "vip"

    inbound = await events_on(kafka_bootstrap, settings.topic("inbound"), f"zendesk:{zd}", 3)
    assert [t for t, _ in inbound] == ["ticket.upsert", "ticket.upsert", "ticket.message"]
    facts = await events_on(kafka_bootstrap, settings.topic("tickets"), f"freshdesk:{fd}", 2)
    types = [t for t, _ in facts]
    assert types[0] == "ticket.created"
    solved = await events_on(kafka_bootstrap, settings.topic("tickets"), f"freshdesk:{fd}", 5)
    assert "ticket.solved" in [t for t, _ in solved]


async def test_concurrent_duplicates_are_stored_once(router: tuple[Any, Settings]) -> None:
    (http, app), _ = router
    data = with_ticket("zendesk", fixture("zendesk_ticket_created"), unique_id("Z"))
    body = encode(data)
    headers = signed("zendesk", body)
    results = await asyncio.gather(
        *(http.post("/v1/webhooks/zendesk", content=body, headers=headers) for _ in range(8))
    )
    assert all(r.status_code == 202 for r in results)
    assert sum(r.json()["accepted"] for r in results) == 1
    assert sum(r.json()["duplicates"] for r in results) == 7
    async with app.state.runtime.sessionmaker() as session:
        count = await session.scalar(
            select(func.count())
            .select_from(WebhookDelivery)
            .where(WebhookDelivery.delivery_key == data["id"])
        )
        stored = await session.scalar(
            select(WebhookDelivery.body).where(WebhookDelivery.delivery_key == data["id"])
        )
    assert count == 1
    assert stored == body.decode()


@pytest.mark.parametrize(
    ("provider", "name", "statements", "events"),
    [("generic", "generic_upsert", 1, 1), ("zendesk", "zendesk_trigger", 2, 2)],
)
async def test_a_delivery_and_its_events_are_one_statement(
    router: tuple[Any, Settings], provider: str, name: str, statements: int, events: int
) -> None:
    """The delivery and its events in the outbox are one statement (the vendor routes first
    read their mappings); the events keep their order, and a redelivery writes nothing."""
    (http, app), settings = router
    # The events are read below from the outbox, which the relay would publish and take off.
    await app.state.runtime.relay.stop()
    route = f"/v1/webhooks/{provider}"
    external = unique_id("S")
    data = with_ticket(provider, fixture(name), external)
    body = encode(data)
    headers = signed(provider, body)  # the same delivery id (generic: webhook-id) twice
    before = await statements_from(http, route)
    first = await http.post(route, content=body, headers=headers)
    again = await http.post(route, content=body, headers=headers)
    assert first.status_code == again.status_code == 202, (first.text, again.text)
    assert await statements_from(http, route) - before == 2 * statements
    ticket_id = first.json()["ticket_ids"][0]
    async with app.state.runtime.sessionmaker() as session:
        values = (
            await session.scalars(
                select(outbox.c.value)
                .where(outbox.c.key == ticket_id, outbox.c.topic == settings.topic("inbound"))
                .order_by(outbox.c.id)
            )
        ).all()
        stored = await session.scalar(
            select(WebhookDelivery.event_types).where(WebhookDelivery.ticket_id == ticket_id)
        )
    assert [decode(value).type for value in values] == stored
    assert len(values) == first.json()["accepted"] == again.json()["duplicates"] == events


async def test_older_update_never_overwrites_newer(router: tuple[Any, Settings]) -> None:
    (http, _), _ = router
    key = f"HELP-{unique_id()}"
    resolved = with_ticket("jira", fixture("jira_issue_updated_resolved"), key)
    created = with_ticket("jira", fixture("jira_issue_created"), key)
    newer = jira_now(resolved)
    older = dict(created, timestamp=newer["timestamp"] - 60_000)
    assert (await post(http, "jira", newer)).status_code == 202  # update before its create

    async def solved() -> dict[str, Any] | None:
        response = await http.get(f"/v1/tickets/jira:{key}")
        return response.json() if response.status_code == 200 else None

    ticket = await eventually(solved)
    assert ticket["status"] == "solved" and ticket["priority"] == "urgent"
    assert (await post(http, "jira", older)).status_code == 202
    await asyncio.sleep(1.5)  # give the consumer the chance to (wrongly) apply it
    again = (await http.get(f"/v1/tickets/jira:{key}")).json()
    assert again["status"] == "solved" and again["priority"] == "urgent"


async def test_accepted_webhooks_survive_a_broker_outage(postgres_url: str) -> None:
    own = Broker()  # Tansu keeps data in memory: this test gets a broker of its own
    own.start()
    try:
        settings = make_settings(
            postgres_url, kafka_bootstrap_servers=own.bootstrap, **SECRET_SETTINGS
        )
        app = create_app(settings)
        async with running(app) as http:
            own.stop()
            external = unique_id("Z")
            for name in ("zendesk_ticket_created", "zendesk_status_changed"):
                data = with_ticket("zendesk", fixture(name), external)
                response = await post(http, "zendesk", data)
                assert response.status_code == 202, response.text
            own.start()
            # A real Kafka keeps its topics on disk; Tansu's memory storage lost them.
            await app.state.runtime.bus.ensure_topics(settings.topic(t) for t in CONTRACT_TOPICS)
            inbound = await events_on(
                own.bootstrap, settings.topic("inbound"), f"zendesk:{external}", 2
            )
            assert [t for t, _ in inbound] == ["ticket.upsert", "ticket.upsert"]
            assert inbound[1][1]["ticket"]["status"] == "pending"
    finally:
        own.stop()


async def test_concurrent_idempotent_creates_make_one_ticket(router: tuple[Any, Settings]) -> None:
    (http, _), _ = router
    body = {
        "subject": "Concurrent create",
        "channel": "api",
        "requester": {"email": "c@example.com"},
    }
    key = {"Idempotency-Key": unique_id("key-")}
    results = await asyncio.gather(
        *(http.post("/v1/tickets", json=body, headers=key) for _ in range(6))
    )
    assert [r.status_code for r in results] == [201] * 6
    assert len({r.json()["id"] for r in results}) == 1
    other = await http.post("/v1/tickets", json={**body, "subject": "Other"}, headers=key)
    assert other.status_code == 422


async def test_vendor_values_never_refuse_a_ticket(router: tuple[Any, Settings]) -> None:
    (http, _), _ = router
    await vendor_values_never_refuse_a_ticket(http)
