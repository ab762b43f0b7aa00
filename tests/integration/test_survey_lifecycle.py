"""survey on PostgreSQL and the real Kafka-protocol broker: scheduling, cooldown, reopen,
duplicates, a restart between schedule and send, webhook and SMTP delivery, token errors."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from email import message_from_bytes
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer
from aiosmtpd.controller import Controller
from fastapi import FastAPI
from standardwebhooks.webhooks import Webhook

from services.launcher import free_port
from services.survey.app import create_app
from shared import events as ev
from shared.settings import Settings
from tests.conftest import eventually, make_settings, running
from tests.delivery_support import Mailbox, WebhookReceiver
from tests.unit.test_survey_flow import (
    ManualClock,
    publish,
    surveys_of,
    ticket,
    token_of,
    wait_status,
    wake_sender,
)

SECRET = "integration-secret"


@pytest.fixture(scope="module")
async def database(fresh_database: Callable[[], Awaitable[str]]) -> str:
    # Own database: the policies made here must not change other tests' default survey.
    return await fresh_database()


@pytest.fixture
def settings(database: str, kafka_bootstrap: str) -> Settings:
    return make_settings(
        database,
        kafka_bootstrap_servers=kafka_bootstrap,
        survey_token_secret=SECRET,
        survey_sender_poll_seconds=0.2,
    )


@contextlib.asynccontextmanager
async def survey_app(
    settings: Settings, clock: ManualClock
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    app = create_app(settings, clock=clock)
    async with running(app) as client:
        yield app, client


def tagged_policy(tag: str, **fields: Any) -> dict[str, Any]:
    return {
        "name": f"policy {tag}",
        "conditions": {"all": [{"field": "tags", "op": "contains", "value": tag}]},
        **fields,
    }


async def create_policy(client: httpx.AsyncClient, body: dict[str, Any]) -> dict[str, Any]:
    response = await client.post("/v1/survey-policies", json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def survey_events(settings: Settings, ticket_id: str, until: set[str]) -> list[dict]:
    """The survey events of a ticket on the broker, read until every type in ``until`` is seen."""
    consumer = AIOKafkaConsumer(
        settings.topic("surveys"),
        bootstrap_servers=settings.kafka_bootstrap_servers,
        group_id=f"probe-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
    )
    await consumer.start()
    found: list[dict] = []
    try:
        async with asyncio.timeout(30):
            while not until <= {e["type"] for e in found}:
                batch = await consumer.getmany(timeout_ms=500)
                for records in batch.values():
                    for record in records:
                        if record.key == ticket_id.encode():
                            found.append(json.loads(record.value))
    finally:
        await consumer.stop()
    return found


async def test_schedules_once_on_duplicate_solved_and_events_reach_the_broker(
    settings: Settings,
) -> None:
    tag = f"dup-{uuid.uuid4().hex[:6]}"
    clock = ManualClock()
    async with survey_app(settings, clock) as (app, client):
        await create_policy(client, tagged_policy(tag, kind="ces"))
        solved = ticket(tags=[tag], solved_at=clock.now())
        event = ev.TicketSolved(ticket=solved)
        await publish(app, event, event_id="solved-1")
        await publish(app, event, event_id="solved-1")  # redelivery
        await publish(app, event)  # the same solve reported again under a new id
        sent = await wait_status(app, client, solved.id, "sent")
        assert sent["kind"] == "ces" and sent["send_at"] == sent["sent_at"]
        await asyncio.sleep(0.5)
        assert len(await surveys_of(client, solved.id)) == 1
        events = await survey_events(settings, solved.id, {"survey.scheduled", "survey.sent"})
        assert [e["type"] for e in events].count("survey.scheduled") == 1
        # The link's token never travels in events.
        assert token_of(sent) not in json.dumps(events)


async def test_cooldown_spans_the_requesters_tickets(settings: Settings) -> None:
    tag = f"cool-{uuid.uuid4().hex[:6]}"
    requester = f"req-{uuid.uuid4().hex[:8]}"
    clock = ManualClock()
    async with survey_app(settings, clock) as (app, client):
        await create_policy(client, tagged_policy(tag, kind="csat", cooldown_days=14))
        first = ticket(tags=[tag], requester_id=requester)
        await publish(app, ev.TicketSolved(ticket=first))
        await wait_status(app, client, first.id, "scheduled")

        clock.advance(timedelta(days=3))
        second = ticket(tags=[tag], requester_id=requester, solved_at=clock.now())
        other = ticket(tags=[tag], solved_at=clock.now())  # another requester: surveyed
        await publish(app, ev.TicketSolved(ticket=second))
        await publish(app, ev.TicketSolved(ticket=other))
        await wait_status(app, client, other.id, "scheduled")
        assert await surveys_of(client, second.id) == []

        clock.advance(timedelta(days=15))
        third = ticket(tags=[tag], requester_id=requester, solved_at=clock.now())
        await publish(app, ev.TicketSolved(ticket=third))
        await wait_status(app, client, third.id, "scheduled")


async def test_reopen_cancels_and_a_new_solve_schedules_again(settings: Settings) -> None:
    tag = f"reopen-{uuid.uuid4().hex[:6]}"
    clock = ManualClock()
    async with survey_app(settings, clock) as (app, client):
        await create_policy(client, tagged_policy(tag, kind="nps", delay_minutes=30))
        solved = ticket(tags=[tag], version=2)
        await publish(app, ev.TicketSolved(ticket=solved))
        await wait_status(app, client, solved.id, "scheduled")
        reopened = solved.model_copy(update={"status": "open", "version": 3})
        await publish(app, ev.TicketReopened(ticket=reopened, previous_status="solved"))
        await wait_status(app, client, solved.id, "cancelled")
        clock.advance(timedelta(hours=1))
        wake_sender(app)
        await asyncio.sleep(0.5)
        assert (await surveys_of(client, solved.id))[0]["status"] == "cancelled"
        events = await survey_events(settings, solved.id, {"survey.cancelled"})
        assert "survey.sent" not in {e["type"] for e in events}

        again = solved.model_copy(update={"version": 4, "solved_at": clock.now()})
        await publish(app, ev.TicketSolved(ticket=again))
        await wait_status(app, client, solved.id, "scheduled")


async def test_restart_between_schedule_and_send_sends_once_by_signed_webhook(
    settings: Settings,
) -> None:
    tag = f"restart-{uuid.uuid4().hex[:6]}"
    clock = ManualClock()
    async with WebhookReceiver(failures=1).serving() as receiver:
        async with survey_app(settings, clock) as (app, client):
            policy = await create_policy(
                client,
                tagged_policy(
                    tag, kind="csat", delay_minutes=45, delivery={"webhook_url": receiver.url}
                ),
            )
            solved = ticket(tags=[tag], solved_at=clock.now())
            await publish(app, ev.TicketSolved(ticket=solved))
            await wait_status(app, client, solved.id, "scheduled")

        clock.advance(timedelta(hours=2))  # the service was down when the survey fell due
        async with survey_app(settings, clock) as (app, client):
            sent = await wait_status(app, client, solved.id, "sent")

            async def attempts() -> int:
                shown = (await client.get(f"/v1/surveys/{sent['id']}")).json()["deliveries"]
                return int(shown[0]["attempts"]) if shown else 0

            await eventually(attempts)  # the first attempt (503) is recorded
            clock.advance(timedelta(seconds=10))  # past the first retry's backoff

            async def delivered() -> bool:
                survey = (await surveys_of(client, solved.id))[0]
                return bool(survey["delivery_status"] == "delivered")

            await eventually(delivered)
            # One survey, sent once; delivered on the second try after a 503, same webhook-id.
            assert len(receiver.received) == 2
            shown = (await client.get(f"/v1/surveys/{sent['id']}")).json()["deliveries"]
            assert [(d["channel"], d["status"], d["attempts"]) for d in shown] == [
                ("webhook", "delivered", 2)
            ]
            assert shown[0]["webhook_id"] == receiver.ids[0]
            assert [a["status_code"] for a in shown[0]["attempt_log"]] == [503, 204]
            assert len({h["webhook-id"] for h, _ in receiver.received}) == 1
            headers, body = receiver.received[-1]
            payload = Webhook(policy["delivery"]["webhook_secret"]).verify(body, headers)
            assert payload["survey"]["url"] == sent["token_url"]
            assert payload["ticket"]["id"] == solved.id
            assert payload["requester"]["email"] == "pat@example.com"
            events = await survey_events(settings, solved.id, {"survey.sent"})
            assert [e["type"] for e in events].count("survey.sent") == 1


async def test_email_delivery_through_a_real_smtp_server(
    database: str, kafka_bootstrap: str
) -> None:
    mailbox = Mailbox()
    port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        settings = make_settings(
            database,
            kafka_bootstrap_servers=kafka_bootstrap,
            survey_token_secret=SECRET,
            survey_sender_poll_seconds=0.2,
            smtp_host="127.0.0.1",
            smtp_port=port,
        )
        tag = f"mail-{uuid.uuid4().hex[:6]}"
        clock = ManualClock()
        async with survey_app(settings, clock) as (app, client):
            await create_policy(client, tagged_policy(tag, kind="ces", delivery={"email": True}))
            solved = ticket(tags=[tag], solved_at=clock.now())
            await publish(app, ev.TicketSolved(ticket=solved))
            sent = await wait_status(app, client, solved.id, "sent")
            await eventually(lambda: asyncio.sleep(0, bool(mailbox.messages)))
            message = message_from_bytes(mailbox.messages[0])
            assert message["To"] == "pat@example.com"
            text = message.get_payload(decode=True).decode()  # type: ignore[union-attr]
            assert sent["token_url"] in text
    finally:
        controller.stop()


async def test_token_errors(settings: Settings) -> None:
    tag = f"tokens-{uuid.uuid4().hex[:6]}"
    clock = ManualClock()
    async with survey_app(settings, clock) as (app, client):
        await create_policy(client, tagged_policy(tag, kind="nps", expires_after_hours=1))
        first, second = ticket(tags=[tag]), ticket(tags=[tag])
        for solved in (first, second):
            await publish(app, ev.TicketSolved(ticket=solved))
        clock.advance(timedelta(hours=1, minutes=1))  # past the 60-minute default delay
        token = token_of(await wait_status(app, client, first.id, "sent"))
        other = token_of(await wait_status(app, client, second.id, "sent"))

        respond = f"/v1/surveys/responses/{token}"
        assert (
            await client.post("/v1/surveys/responses/" + "A" * 43, json={"score": 5})
        ).status_code == 404
        assert (await client.post(respond, json={"score": 11})).status_code == 422
        assert (await client.post(respond, json={"score": "9"})).status_code == 422
        assert (await client.post(respond, json={"score": 8, "kind": "csat"})).status_code == 422
        low = await client.post(respond, json={"score": 3, "comment": "took days"})
        assert low.status_code == 200, low.text
        assert (await client.post(respond, json={"score": 10})).status_code == 409

        clock.advance(timedelta(hours=2))
        expired = await client.post(f"/v1/surveys/responses/{other}", json={"score": 10})
        assert expired.status_code == 410 and expired.json()["error"]["code"] == "gone"
        assert (await client.get(f"/s/{other}")).status_code == 410
        await wait_status(app, client, second.id, "expired")

        events = await survey_events(
            settings, first.id, {"survey.answered", "survey.follow_up_required"}
        )
        follow_up = next(e for e in events if e["type"] == "survey.follow_up_required")
        assert follow_up["data"]["score"] == 3 and follow_up["data"]["comment"] == "took days"
