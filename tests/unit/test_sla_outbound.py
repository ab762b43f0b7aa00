"""sla's outbound messages through the shared deliverer, to a real HTTP receiver and a real
SMTP server: signed webhooks retried with backoff, and escalation ``notify`` delivered."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator, Iterator
from email import message_from_bytes
from pathlib import Path
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook

from services.sla.app import create_app
from shared import events as ev
from shared.bus import MemoryBus
from shared.migrate import upgrade
from tests.conftest import eventually, make_settings, running
from tests.delivery_support import Mailbox, WebhookReceiver, smtp_server
from tests.unit.test_sla_lifecycle import T0, FakeClock, Sla

SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123").decode()


@pytest.fixture
def smtp() -> Iterator[tuple[Mailbox, int]]:
    with smtp_server() as server:
        yield server


@pytest.fixture
async def sla(tmp_path: Path, smtp: tuple[Mailbox, int]) -> AsyncIterator[Sla]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'tf.db'}"
    await asyncio.to_thread(upgrade, "sla", url)
    clock = FakeClock(T0)
    bus = MemoryBus()
    await bus.start()
    settings = make_settings(url, smtp_host="127.0.0.1", smtp_port=smtp[1])
    app = create_app(settings, bus=bus, clock=clock)
    async with running(app) as client:
        yield Sla(client, app.state.runtime, clock)
    await bus.stop()


async def subscribe(sla: Sla, url: str, event_types: list[str]) -> dict[str, Any]:
    created = await sla.client.post(
        "/v1/webhook-subscriptions",
        json={"url": url, "event_types": event_types, "secret": SECRET},
    )
    assert created.status_code == 201, created.text
    body: dict[str, Any] = created.json()
    return body


async def deliveries(sla: Sla, subscription_id: str) -> list[dict[str, Any]]:
    response = await sla.client.get(f"/v1/webhook-subscriptions/{subscription_id}/deliveries")
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


async def test_webhooks_are_signed_retried_and_logged(sla: Sla) -> None:
    bad = await sla.client.post(
        "/v1/webhook-subscriptions",
        json={"url": "http://hooks/hook", "event_types": ["sla.*"], "secret": "not base64!!"},
    )
    assert bad.status_code == 422 and bad.json()["error"]["details"][0]["field"] == "secret"
    unknown = await sla.client.post(
        "/v1/webhook-subscriptions",
        json={"url": "http://hooks/hook", "event_types": ["sla.exploded"], "secret": SECRET},
    )
    assert unknown.status_code == 422

    async with WebhookReceiver(responses=[500]).serving() as receiver:
        subscription = await subscribe(sla, receiver.url, ["sla.started"])
        assert "secret" not in subscription

        async def attempted(minimum: int) -> bool:
            return sum(d["attempts"] for d in await deliveries(sla, subscription["id"])) >= minimum

        # first_response and resolution start: two deliveries; the receiver fails the first
        # attempt, which is retried after the backoff (5 s ± 20 %) of the service's clock.
        await sla.deliver(ev.TicketCreated(ticket=sla.snapshot("api:hook-1")))
        await eventually(lambda: attempted(2))
        sla.clock.advance(seconds=7)
        await eventually(lambda: attempted(3))

    log = await deliveries(sla, subscription["id"])
    assert len(log) == 2, log
    assert {d["status"] for d in log} == {"delivered"}
    assert sorted(d["attempts"] for d in log) == [1, 2]
    retried = next(d for d in log if d["attempts"] == 2)
    assert [a["status_code"] for a in retried["attempt_log"]] == [500, 204]
    assert retried["attempt_log"][0]["next_attempt_at"] is not None
    # Every request verifies; the retried one came twice with the same webhook-id.
    payloads = [Webhook(SECRET).verify(body, headers) for headers, body in receiver.received]
    assert all(p["type"] == "sla.started" for p in payloads) and len(payloads) == 3
    assert receiver.ids.count(retried["webhook_id"]) == 2
    assert sorted(set(receiver.ids)) == sorted(d["id"] for d in log)
    deleted = await sla.client.delete(f"/v1/webhook-subscriptions/{subscription['id']}")
    assert deleted.status_code == 204


async def test_escalation_notify_reaches_webhook_and_mail(
    sla: Sla, smtp: tuple[Mailbox, int]
) -> None:
    mailbox, _ = smtp
    policy = await sla.client.post(
        "/v1/sla-policies",
        json={
            "name": "Escalating",
            "targets": [{"priority": "normal", "metric": "first_response", "minutes": 60}],
            "escalations": [
                {
                    "metric": "first_response",
                    "level": 1,
                    "when": "breach",
                    "actions": {"notify": ["lead@example.com", "tier2-desk", "boss@example.com"]},
                }
            ],
        },
    )
    assert policy.status_code == 201, policy.text
    async with WebhookReceiver().serving() as receiver:
        subscription = await subscribe(sla, receiver.url, ["sla.escalated"])
        await sla.deliver(ev.TicketCreated(ticket=sla.snapshot("api:notify-1")))
        sla.clock.advance(minutes=61)
        await eventually(lambda: asyncio.sleep(0, bool(receiver.received)))
        await eventually(lambda: asyncio.sleep(0, len(mailbox.messages) == 2))

    headers, body = receiver.received[0]
    payload = Webhook(SECRET).verify(body, headers)
    assert payload["type"] == "sla.escalated"
    assert payload["data"]["ticket_id"] == "api:notify-1"
    assert payload["data"]["recipients"] == ["lead@example.com", "tier2-desk", "boss@example.com"]
    assert len(receiver.received) == 1, "only sla.escalated was subscribed"
    mails = sorted((message_from_bytes(m) for m in mailbox.messages), key=lambda m: m["To"])
    assert [m["To"] for m in mails] == ["boss@example.com", "lead@example.com"]
    text = mails[0].get_payload(decode=True).decode()  # type: ignore[union-attr]
    assert "api:notify-1" in text and "breached" in text
    assert mails[0]["Message-ID"] != mails[1]["Message-ID"]

    async def delivered() -> bool:
        log = await deliveries(sla, subscription["id"])
        return bool(log) and log[0]["status"] == "delivered"

    await eventually(delivered)
    assert json.loads(body)["data"]["actions"]["notify"][0] == "lead@example.com"
