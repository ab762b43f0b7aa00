"""survey's life cycle on SQLite and the in-memory bus, with a clock the test moves."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from services.survey import service
from services.survey.app import create_app
from services.survey.sender import SenderState
from shared import events as ev
from shared.bus import MemoryBus
from shared.migrate import upgrade_all
from shared.runtime import ServiceRuntime
from tests.conftest import eventually, make_settings, running

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


class ManualClock:
    def __init__(self, now: datetime = T0) -> None:
        self.current = now

    def now(self) -> datetime:
        return self.current

    def advance(self, delta: timedelta) -> None:
        self.current += delta

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(min(seconds, 0.05))


def ticket(
    ticket_id: str | None = None,
    *,
    requester_id: str | None = None,
    version: int = 2,
    channel: str = "email",
    solved_at: datetime = T0,
    **fields: Any,
) -> ev.TicketSnapshot:
    ticket_id = ticket_id or f"api:{uuid.uuid4().hex[:12]}"
    values: dict[str, Any] = {
        "id": ticket_id,
        "source": "api",
        "external_id": ticket_id.split(":", 1)[1],
        "subject": "Printer on fire",
        "status": "solved",
        "priority": "normal",
        "channel": channel,
        "requester": {
            "id": requester_id or f"req-{uuid.uuid4().hex[:8]}",
            "email": "pat@example.com",
            "name": "Pat",
        },
        "assignee_id": "agent-1",
        "group": "support",
        "created_at": solved_at - timedelta(hours=1),
        "updated_at": solved_at,
        "solved_at": solved_at,
        "version": version,
    }
    values.update(fields)
    return ev.TicketSnapshot.model_validate(values)


def runtime_of(app: FastAPI) -> ServiceRuntime:
    runtime: ServiceRuntime = app.state.runtime
    return runtime


async def publish(app: FastAPI, event: ev.Event, event_id: str | None = None) -> None:
    runtime = runtime_of(app)
    key, value, headers = ev.encode(event, source="/test/router", event_id=event_id)
    await runtime.bus.publish(runtime.settings.topic(event.topic), key, value, headers)


async def surveys_of(client: httpx.AsyncClient, ticket_id: str) -> list[dict[str, Any]]:
    response = await client.get("/v1/surveys", params={"ticket_id": ticket_id})
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


def wake_sender(app: FastAPI) -> None:
    runtime_of(app).state_of(SenderState).wake.set()


async def wait_status(
    app: FastAPI, client: httpx.AsyncClient, ticket_id: str, status: str
) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        wake_sender(app)
        items = await surveys_of(client, ticket_id)
        return items[0] if items and items[0]["status"] == status else None

    found: dict[str, Any] = await eventually(probe)
    return found


def token_of(survey: dict[str, Any]) -> str:
    assert survey["token_url"], survey
    return str(survey["token_url"]).rsplit("/s/", 1)[1]


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient, ManualClock]]:
    url = f"sqlite+aiosqlite:///{tmp_path}/tf.db"
    await upgrade_all(url, ("survey",))
    settings = make_settings(url, survey_token_secret="unit-secret", survey_sender_poll_seconds=0.1)
    bus = MemoryBus(partitions=2, max_retries=1)
    await bus.start()
    clock = ManualClock()
    app = create_app(settings, bus=bus, clock=clock)
    async with running(app) as client:
        yield app, client, clock
    await bus.stop()


# --- pure rules ---------------------------------------------------------------------------------


def test_sampling_is_deterministic_per_ticket() -> None:
    decisions = [service.sampled(f"api:{n}", "p1", 0.3) for n in range(2000)]
    assert decisions == [service.sampled(f"api:{n}", "p1", 0.3) for n in range(2000)]
    share = sum(decisions) / len(decisions)
    assert 0.25 < share < 0.35
    assert not any(service.sampled(f"api:{n}", "p1", 0.0) for n in range(100))
    assert all(service.sampled(f"api:{n}", "p1", 1.0) for n in range(100))


def test_tokens_are_256_bit_and_stored_hashed() -> None:
    token = service.derive_token("secret", "survey-1")
    assert len(token) == 43  # 32 bytes, url-safe base64
    assert token != service.derive_token("secret", "survey-2")
    assert token != service.derive_token("other", "survey-1")
    assert len(service.hash_token(token)) == 64 and token not in service.hash_token(token)
    assert service.new_token(None, "x") != service.new_token(None, "x")


def test_default_policy_only_without_policies() -> None:
    assert service.choose_policy([], ticket()) is service.DEFAULT_POLICY


# --- API and life cycle ---------------------------------------------------------------------------


async def test_policy_crud_and_validation(
    env: tuple[FastAPI, httpx.AsyncClient, ManualClock],
) -> None:
    _, client, _ = env
    ces = await client.post("/v1/survey-policies", json={"name": "CES chat", "kind": "ces"})
    assert ces.status_code == 201, ces.text
    body = ces.json()
    assert body["delay_minutes"] == 0 and body["question"]
    csat = await client.post("/v1/survey-policies", json={"name": "CSAT", "kind": "csat"})
    assert csat.json()["delay_minutes"] == 60

    bad_kind = await client.post("/v1/survey-policies", json={"name": "x", "kind": "stars"})
    assert bad_kind.status_code == 422
    assert bad_kind.json()["error"]["details"][0]["field"] == "kind"
    unknown = await client.post(
        "/v1/survey-policies",
        json={
            "name": "x",
            "kind": "nps",
            "conditions": {"all": [{"field": "mood", "op": "eq", "value": "sad"}]},
        },
    )
    assert unknown.status_code == 422 and "mood" in unknown.json()["error"]["message"]
    rate = await client.post(
        "/v1/survey-policies", json={"name": "x", "kind": "nps", "sample_rate": 1.5}
    )
    assert rate.status_code == 422 and rate.json()["error"]["details"][0]["field"] == "sample_rate"
    hook = await client.post(
        "/v1/survey-policies",
        json={"name": "hook", "kind": "nps", "delivery": {"webhook_url": "https://h.example/x"}},
    )
    secret = hook.json()["delivery"]["webhook_secret"]
    assert secret.startswith("whsec_"), "the admin who creates it sees the generated secret"
    hook_id = hook.json()["id"]
    read = await client.get(f"/v1/survey-policies/{hook_id}")
    assert read.json()["delivery"]["webhook_secret"] is None, "never shown again on reads"
    renamed = await client.put(
        f"/v1/survey-policies/{hook_id}",
        json={"name": "hook 2", "kind": "nps", "delivery": {"webhook_url": "https://h.example/x"}},
    )
    assert renamed.json()["delivery"]["webhook_secret"] == secret, "a PUT keeps the secret"

    policy_id = body["id"]
    put = await client.put(
        f"/v1/survey-policies/{policy_id}",
        json={"name": "CES chat", "kind": "ces", "delay_minutes": 5, "cooldown_days": 30},
    )
    assert put.status_code == 200 and put.json()["cooldown_days"] == 30
    listed = await client.get("/v1/survey-policies", params={"limit": 2})
    assert len(listed.json()["items"]) == 2 and listed.json()["next_cursor"]
    following = await client.get(
        "/v1/survey-policies", params={"cursor": listed.json()["next_cursor"]}
    )
    assert len(following.json()["items"]) == 1
    assert (await client.delete(f"/v1/survey-policies/{policy_id}")).status_code == 204
    assert (await client.get(f"/v1/survey-policies/{policy_id}")).status_code == 404


async def test_default_policy_schedules_sends_and_takes_an_answer(
    env: tuple[FastAPI, httpx.AsyncClient, ManualClock],
) -> None:
    app, client, clock = env
    solved = ticket()
    await publish(app, ev.TicketSolved(ticket=solved))
    scheduled = await wait_status(app, client, solved.id, "scheduled")
    assert scheduled["policy_id"] == "default-csat"
    assert scheduled["token_url"] is None

    clock.advance(timedelta(minutes=61))
    sent = await wait_status(app, client, solved.id, "sent")
    token = token_of(sent)

    page = await client.get(f"/s/{token}")
    assert page.status_code == 200 and 'value="5"' in page.text and "<textarea" in page.text
    off_scale = await client.post(f"/v1/surveys/responses/{token}", json={"score": 6})
    assert off_scale.status_code == 422
    wrong_kind = await client.post(
        f"/v1/surveys/responses/{token}", json={"score": 9, "kind": "nps"}
    )
    assert wrong_kind.status_code == 422
    long = await client.post(
        f"/v1/surveys/responses/{token}", json={"score": 2, "comment": "x" * 5001}
    )
    assert long.status_code == 422
    answered = await client.post(f"/s/{token}", data={"score": "2", "comment": "slow"})
    assert answered.status_code == 200 and "Thank you" in answered.text
    again = await client.post(f"/v1/surveys/responses/{token}", json={"score": 4})
    assert again.status_code == 409
    assert (await client.get(f"/s/{token}")).status_code == 409
    assert (await client.get("/s/not-a-token")).status_code == 404
    unknown = await client.post("/v1/surveys/responses/nope", json={"score": 4})
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "not_found"

    report = await client.get("/v1/reports/satisfaction", params={"group_by": "agent"})
    assert report.status_code == 200, report.text
    rows = [r for r in report.json()["items"] if r["group"] == "agent-1"]
    assert rows and rows[0]["answered"] >= 1


async def test_unanswered_survey_expires(
    env: tuple[FastAPI, httpx.AsyncClient, ManualClock],
) -> None:
    app, client, clock = env
    await client.post(
        "/v1/survey-policies",
        json={"name": "CES", "kind": "ces", "expires_after_hours": 2},
    )
    solved = ticket(solved_at=clock.now())
    await publish(app, ev.TicketSolved(ticket=solved))
    sent = await wait_status(app, client, solved.id, "sent")
    clock.advance(timedelta(hours=3))
    assert (await client.get(f"/s/{token_of(sent)}")).status_code == 410
    await wait_status(app, client, solved.id, "expired")
    late = await client.post(f"/v1/surveys/responses/{token_of(sent)}", json={"score": 7})
    assert late.status_code == 410


async def test_demo_seed_creates_policies_once(
    env: tuple[FastAPI, httpx.AsyncClient, ManualClock],
) -> None:
    from services.survey.demo import DEMO_POLICIES, seed

    _, client, _ = env
    await seed(client, "http://testserver")
    await seed(client, "http://testserver")
    items = (await client.get("/v1/survey-policies")).json()["items"]
    assert sorted(i["name"] for i in items) == sorted(str(p["name"]) for p in DEMO_POLICIES)
    assert {i["kind"] for i in items} == {"ces", "csat"}


async def test_links_without_a_configured_secret_and_follow_up_names_the_agent(
    tmp_path: Path,
) -> None:
    """No TICKETFLOW_SURVEY_TOKEN_SECRET: a secret is generated once and kept in the survey
    schema, so every sent survey has its ``token_url`` on every instance; a low answer's
    follow-up names the agent and group that solved the ticket."""
    from sqlalchemy import select

    from services.survey.models import outbox

    url = f"sqlite+aiosqlite:///{tmp_path}/tf.db"
    await upgrade_all(url, ("survey",))
    settings = make_settings(url, survey_sender_poll_seconds=0.1)
    assert settings.survey_token_secret is None
    bus = MemoryBus(partitions=2, max_retries=1)
    await bus.start()
    clock = ManualClock()
    app = create_app(settings, bus=bus, clock=clock)
    async with running(app) as client:
        solved = ticket(assignee_id="agent-7", group="billing")
        await publish(app, ev.TicketSolved(ticket=solved))
        await wait_status(app, client, solved.id, "scheduled")
        clock.advance(timedelta(minutes=61))
        sent = await wait_status(app, client, solved.id, "sent")
        token = token_of(sent)
        other = create_app(settings, bus=bus, clock=clock)
        async with running(other) as second:
            [again] = await surveys_of(second, solved.id)
            assert again["token_url"] == sent["token_url"]
        await runtime_of(app).relay.stop()  # its events stay in the outbox, read below
        answered = await client.post(f"/v1/surveys/responses/{token}", json={"score": 1})
        assert answered.status_code == 200, answered.text
        async with runtime_of(app).sessionmaker() as session:
            rows = (await session.execute(select(outbox.c.value))).all()
        follow_ups = [
            e for e in (ev.decode(r.value) for r in rows) if e.type == "survey.follow_up_required"
        ]
        assert len(follow_ups) == 1
        data = follow_ups[0].data
        assert (data["assignee_id"], data["group"]) == ("agent-7", "billing")
    await bus.stop()


def test_demo_survey_delay_is_short() -> None:
    from services.survey.demo import DEMO_POLICIES

    assert all(int(str(p["delay_minutes"])) <= 1 for p in DEMO_POLICIES)
