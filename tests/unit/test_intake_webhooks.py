"""Webhook intake end to end in-process: SQLite + the in-memory bus, router's real consumer."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.router.app import create_app
from services.router.intake import RateLimiter
from shared.bus import MemoryBus
from shared.errors import TooManyRequests
from shared.migrate import upgrade_all
from shared.settings import Settings
from tests.conftest import eventually, make_settings, running
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

PROVIDERS = ("zendesk", "freshdesk", "jira", "generic")
BASE = {
    "zendesk": "zendesk_ticket_created",
    "freshdesk": "freshdesk_ticket_created",
    "jira": "jira_issue_created",
    "generic": "generic_upsert",
}


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    url = f"sqlite+aiosqlite:///{tmp_path}/tf.db"
    await upgrade_all(url, ("router",))
    async with serving(make_settings(url, **SECRET_SETTINGS)) as http:
        yield http


async def started_bus() -> MemoryBus:
    bus = MemoryBus(partitions=2)
    await bus.start()
    return bus


@contextlib.asynccontextmanager
async def serving(app_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    bus = await started_bus()
    app = create_app(app_settings, bus=bus)
    async with running(app) as http:
        yield http
        # Let the consumer finish what the test started before the bus and engine go away.
        runtime = app.state.runtime
        await eventually(lambda: _drained(runtime))
        await asyncio.sleep(0.3)
        await bus.stop()


async def _drained(runtime: Any) -> bool:
    return bool(await runtime.relay.pending() == 0)


def payload(provider: str, external_id: str, name: str | None = None) -> dict[str, Any]:
    data = with_ticket(provider, fixture(name or BASE[provider]), external_id)
    return jira_now(data) if provider == "jira" else data


def ticket_id(provider: str, external_id: str) -> str:
    return f"acme:{external_id}" if provider == "generic" else f"{provider}:{external_id}"


async def post(
    http: httpx.AsyncClient, provider: str, data: dict[str, Any], **sign: Any
) -> httpx.Response:
    body = encode(data)
    return await http.post(
        f"/v1/webhooks/{provider}", content=body, headers=signed(provider, body, **sign)
    )


async def ticket(http: httpx.AsyncClient, tid: str) -> dict[str, Any] | None:
    response = await http.get(f"/v1/tickets/{tid}")
    return response.json() if response.status_code == 200 else None


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_valid_delivery_creates_the_ticket(client: httpx.AsyncClient, provider: str) -> None:
    external = unique_id("T")
    response = await post(client, provider, payload(provider, external))
    assert response.status_code == 202, response.text
    assert response.json() == {
        "accepted": 1,
        "duplicates": 0,
        "ticket_ids": [ticket_id(provider, external)],
    }
    stored = await eventually(lambda: ticket(client, ticket_id(provider, external)))
    expected = {
        "zendesk": ("new", "low", "web"),
        "freshdesk": ("open", "normal", "email"),
        "jira": ("open", "high", "web"),  # JSM "Waiting for support": the agent's turn
        "generic": ("open", "high", "web"),
    }[provider]
    assert (stored["status"], stored["priority"], stored["channel"]) == expected


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_wrong_secret_is_refused(client: httpx.AsyncClient, provider: str) -> None:
    secret = "whsec_" + "d3Jvbmcta2V5LXdyb25nLWtleQ==" if provider == "generic" else "wrong"
    response = await post(client, provider, payload(provider, unique_id()), secret=secret)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_missing_signature_is_refused(client: httpx.AsyncClient, provider: str) -> None:
    response = await client.post(
        f"/v1/webhooks/{provider}", content=encode(payload(provider, unique_id()))
    )
    assert response.status_code == 401


@pytest.mark.parametrize("provider", ["zendesk", "jira", "generic"])
async def test_expired_signature_is_refused(client: httpx.AsyncClient, provider: str) -> None:
    old = datetime.now(UTC) - timedelta(minutes=6)
    data = payload(provider, unique_id())
    if provider == "jira":
        data = jira_now(data, old)
    response = await post(client, provider, data, at=old)
    assert response.status_code == 401, response.text


async def test_provider_without_secret_refuses(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/tf.db"
    await upgrade_all(url, ("router",))
    async with serving(make_settings(url)) as http:
        for provider in PROVIDERS:
            response = await post(http, provider, payload(provider, unique_id()))
            assert response.status_code == 401
            assert "TICKETFLOW_WEBHOOK_SECRET_" in response.json()["error"]["message"]


async def test_freshdesk_token_header_is_accepted(client: httpx.AsyncClient) -> None:
    body = encode(payload("freshdesk", unique_id()))
    response = await client.post(
        "/v1/webhooks/freshdesk",
        content=body,
        headers={"x-ticketflow-token": SECRET_SETTINGS["webhook_secret_freshdesk"]},
    )
    assert response.status_code == 202


@pytest.mark.parametrize(
    ("provider", "mutate", "field"),
    [
        ("zendesk", lambda d: d["detail"].update(tags="not-a-list"), "detail.tags"),
        ("zendesk", lambda d: d.pop("detail"), "detail"),
        (
            "freshdesk",
            lambda d: d["freshdesk_webhook"].update(ticket_priority=[9]),
            "ticket_priority",
        ),
        ("freshdesk", lambda d: d.pop("freshdesk_webhook"), "freshdesk_webhook"),
        ("jira", lambda d: d["issue"]["fields"].update(status={"id": 1}), "status.name"),
        ("jira", lambda d: d.update(webhookEvent="sprint_started"), "webhookEvent"),
        ("generic", lambda d: d["data"]["ticket"].update(status="snoozed"), "data.ticket.status"),
        ("generic", lambda d: d["data"].update(subject="x\x00y"), "data.subject"),
        (
            "generic",
            lambda d: d["data"]["ticket"].update(subject="x\ud800y"),
            "data.ticket.subject",
        ),
    ],
)
async def test_bad_payload_is_422_naming_the_field(
    client: httpx.AsyncClient, provider: str, mutate: Any, field: str
) -> None:
    data = payload(provider, unique_id())
    mutate(data)
    response = await post(client, provider, data)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert any(field in d.get("field", "") for d in error["details"]), error


async def test_malformed_json_and_oversized_bodies(client: httpx.AsyncClient) -> None:
    body = b'{"type": "zen:event-type:ticket.created",'
    response = await client.post(
        "/v1/webhooks/zendesk", content=body, headers=signed("zendesk", body)
    )
    assert response.status_code == 422
    big = b'{"x": "' + b"a" * (1024 * 1024) + b'"}'
    response = await client.post(
        "/v1/webhooks/zendesk", content=big, headers=signed("zendesk", big)
    )
    assert response.status_code == 413


async def test_redelivery_is_a_duplicate_and_changes_nothing(client: httpx.AsyncClient) -> None:
    data = payload("zendesk", unique_id())
    first = await post(client, "zendesk", data)
    again = await post(client, "zendesk", data)
    assert first.json()["accepted"] == 1
    assert again.status_code == 202 and again.json()["accepted"] == 0
    assert again.json()["duplicates"] == 1
    # Freshdesk gives no delivery id: the body's hash names the delivery.
    fd = payload("freshdesk", unique_id())
    results = await asyncio.gather(*(post(client, "freshdesk", fd) for _ in range(5)))
    assert sorted(r.json()["accepted"] for r in results) == [0, 0, 0, 0, 1]


async def test_update_before_create_and_stale_update(client: httpx.AsyncClient) -> None:
    external = unique_id("Z")
    tid = f"zendesk:{external}"
    status = with_ticket("zendesk", fixture("zendesk_status_changed"), external)
    created = with_ticket("zendesk", fixture("zendesk_ticket_created"), external)
    assert (await post(client, "zendesk", status)).status_code == 202
    stored = await eventually(lambda: ticket(client, tid))
    assert stored["status"] == "pending"
    # The older "created" report arrives late: it must not put the ticket back to "new".
    assert (await post(client, "zendesk", created)).status_code == 202
    priority = with_ticket("zendesk", fixture("zendesk_priority_changed"), external)
    assert (await post(client, "zendesk", priority)).status_code == 202

    async def urgent() -> dict[str, Any] | None:
        current = await ticket(client, tid)
        return current if current and current["priority"] == "urgent" else None

    final = await eventually(urgent)
    assert final["status"] == "pending"


async def test_comment_becomes_a_message(client: httpx.AsyncClient) -> None:
    external = unique_id("Z")
    data = with_ticket("zendesk", fixture("zendesk_comment_added"), external)
    response = await post(client, "zendesk", data)
    assert response.json()["accepted"] == 2
    stored = await eventually(lambda: ticket(client, f"zendesk:{external}"))
    assert stored["priority"] == "urgent"
    audit = await client.get(f"/v1/tickets/zendesk:{external}/deliveries")
    assert audit.status_code == 200
    [delivery] = audit.json()["items"]
    assert delivery["event_types"] == ["ticket.upsert", "ticket.message"]
    assert json.loads(delivery["body"]) == data


async def test_idempotency_key_replays_and_refuses_other_body(client: httpx.AsyncClient) -> None:
    body = {"subject": "Hello", "channel": "api", "requester": {"email": "a@example.com"}}
    key = {"Idempotency-Key": unique_id("key-")}
    first = await client.post("/v1/tickets", json=body, headers=key)
    second = await client.post("/v1/tickets", json=body, headers=key)
    assert first.status_code == second.status_code == 201
    assert first.json() == second.json()
    assert second.headers.get("idempotent-replayed") == "true"
    other = await client.post("/v1/tickets", json={**body, "subject": "Bye"}, headers=key)
    assert other.status_code == 422
    assert other.json()["error"]["details"][0]["field"] == "Idempotency-Key"
    listed = await client.get("/v1/tickets", params={"limit": 100})
    assert [t["id"] for t in listed.json()["items"]].count(first.json()["id"]) == 1


def test_rate_limiter_answers_retry_after() -> None:
    limiter = RateLimiter(rate=1.0, burst=2)
    limiter.take("jira:1.2.3.4", now=0.0)
    limiter.take("jira:1.2.3.4", now=0.0)
    with pytest.raises(TooManyRequests) as caught:
        limiter.take("jira:1.2.3.4", now=0.1)
    assert caught.value.headers == {"Retry-After": "1"}
    limiter.take("zendesk:1.2.3.4", now=0.1)  # another source has its own bucket
    limiter.take("jira:1.2.3.4", now=1.5)


async def test_rate_limit_429_over_http(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/tf.db"
    await upgrade_all(url, ("router",))
    settings_ = make_settings(url, intake_rate_per_second=0.01, intake_burst=1, **SECRET_SETTINGS)
    async with serving(settings_) as http:
        assert (await post(http, "zendesk", payload("zendesk", unique_id()))).status_code == 202
        limited = await post(http, "zendesk", payload("zendesk", unique_id()))
        assert limited.status_code == 429
        assert int(limited.headers["retry-after"]) >= 1


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    provider=st.sampled_from(PROVIDERS),
    body=st.one_of(
        st.binary(max_size=300),
        json_values.map(lambda v: json.dumps(v).encode()),
        st.sampled_from(
            [
                "zendesk_ticket_created",
                "freshdesk_ticket_created",
                "jira_issue_created",
                "generic_upsert",
                "zendesk_trigger",
            ]
        )
        .flatmap(lambda name: st.fixed_dictionaries({}).map(lambda _: fixture(name)))
        .flatmap(
            lambda base: st.dictionaries(
                st.sampled_from(sorted(base)), json_values, max_size=2
            ).map(lambda over: json.dumps({**base, **over}).encode())
        ),
    ),
    headers=st.dictionaries(
        st.sampled_from(
            [
                "x-hub-signature",
                "webhook-id",
                "webhook-signature",
                "webhook-timestamp",
                "authorization",
                "x-zendesk-webhook-signature",
                "x-zendesk-webhook-signature-timestamp",
                "x-ticketflow-token",
            ]
        ),
        st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=40),
        max_size=4,
    ),
    sign=st.booleans(),
)
async def test_fuzzed_webhooks_never_5xx(
    client: httpx.AsyncClient, provider: str, body: bytes, headers: dict[str, str], sign: bool
) -> None:
    if sign:
        headers = (
            {**headers, **signed(provider, body)}
            if provider != "generic" or _utf8(body)
            else headers
        )
    response = await client.post(f"/v1/webhooks/{provider}", content=body, headers=headers)
    assert response.status_code < 500, response.text
    assert response.status_code in (202, 401, 413, 422, 429)


def _utf8(body: bytes) -> bool:
    try:
        body.decode()
    except UnicodeDecodeError:
        return False
    return True


async def test_vendor_values_never_refuse_a_ticket(client: httpx.AsyncClient) -> None:
    await vendor_values_never_refuse_a_ticket(client)
