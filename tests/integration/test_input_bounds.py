"""Inputs PostgreSQL cannot store or compare are a 422 naming the problem, never a 500: the
classes the fuzzer found (long URLs, NUL characters, numbers and instants out of range)."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from services.router.app import create_app as create_router
from services.sla.app import create_app as create_sla
from services.survey.app import create_app as create_survey
from shared.pagination import encode_cursor
from tests.conftest import make_settings, running

SECRET = "whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM="
NUL = "\x00"
LONG_PATH_URL = "http://hooks.example.com/" + "é" * 1000  # 1 000 chars, 6 000 once encoded
DEEP: Any = 1
for _ in range(20):
    DEEP = [DEEP]
TICKET = {"subject": "s", "channel": "chat", "requester": {"id": "r1"}}

CASES: dict[str, list[tuple[str, str, Any, str]]] = {
    "router": [
        ("GET", "/v1/tickets/api:a%00b", None, "path"),
        ("GET", "/v1/tickets?group=a%00", None, "group"),
        ("GET", "/v1/agents?cursor=" + encode_cursor("a" + NUL), None, "cursor"),
        ("GET", "/v1/routing-rules?cursor=" + encode_cursor(2**70, "a"), None, "cursor"),
        ("PUT", "/v1/agents/ana", {"name": "Ana" + NUL}, "name"),
        ("POST", "/v1/tickets", {**TICKET, "requester": {"id": "r" + NUL}}, "requester.id"),
        ("POST", "/v1/tickets", {**TICKET, "custom_fields": {"plan": "x" + NUL}}, "plan"),
        ("POST", "/v1/tickets", {**TICKET, "custom_fields": {"n": math.inf}}, "finite"),
        ("POST", "/v1/tickets", {**TICKET, "custom_fields": {"n": 2**70}}, "range"),
        ("POST", "/v1/tickets", {**TICKET, "custom_fields": {"n": DEEP}}, "deeper"),
    ],
    "sla": [
        ("GET", "/v1/calendars/a%00", None, "path"),
        ("GET", "/v1/breaches?from=0001-01-01T00:00:00%2B14:00", None, "from"),
        ("GET", "/v1/reports/sla?to=9999-12-31T23:59:59-14:00", None, "to"),
        (
            "POST",
            "/v1/webhook-subscriptions",
            {"url": LONG_PATH_URL, "event_types": ["sla.*"], "secret": SECRET},
            "url",
        ),
        (
            "POST",
            "/v1/sla-policies",
            {
                "name": "n",
                "targets": [
                    {
                        "priority": "low",
                        "metric": "resolution",
                        "minutes": 5,
                        "calendar_id": "c" * 65,
                    }
                ],
            },
            "calendar_id",
        ),
    ],
    "survey": [
        ("GET", "/v1/surveys?ticket_id=%00", None, "ticket_id"),
        ("GET", "/s/abc%00", None, "path"),
        (
            "POST",
            "/v1/survey-policies",
            {"name": "n", "kind": "csat", "question": "q" + NUL},
            "question",
        ),
        (
            "POST",
            "/v1/survey-policies",
            {"name": "n", "kind": "csat", "delivery": {"webhook_url": LONG_PATH_URL}},
            "webhook_url",
        ),
        ("GET", "/v1/reports/satisfaction?from=0001-01-01T00:00:00%2B14:00", None, "from"),
        ("GET", "/v1/survey-policies?cursor=" + encode_cursor(1, "a" + NUL), None, "cursor"),
    ],
}
APPS = {"router": create_router, "sla": create_sla, "survey": create_survey}


@pytest.mark.parametrize("service", sorted(CASES))
async def test_unstorable_input_is_refused_naming_it(
    service: str, postgres_url: str, kafka_bootstrap: str
) -> None:
    settings = make_settings(postgres_url, kafka_bootstrap_servers=kafka_bootstrap)
    async with running(APPS[service](settings)) as client:
        for method, path, body, named in CASES[service]:
            # Python's JSON (and so FastAPI) reads NaN and Infinity: send them as a client could.
            content = None if body is None else json.dumps(body, allow_nan=True)
            headers = {"content-type": "application/json"}
            response = await client.request(method, path, content=content, headers=headers)
            # A cursor that is not ours is a 400 on every list; everything else a 422.
            expected = 400 if named == "cursor" else 422
            assert response.status_code == expected, (method, path, response.text)
            error = response.json()["error"]
            assert named in error["message"] + str(error["details"]), (path, error)


async def test_a_long_webhook_url_is_422_on_put_too(
    postgres_url: str, kafka_bootstrap: str
) -> None:
    settings = make_settings(postgres_url, kafka_bootstrap_servers=kafka_bootstrap)
    async with running(create_survey(settings)) as client:
        created = await client.post("/v1/survey-policies", json={"name": "n", "kind": "csat"})
        assert created.status_code == 201, created.text
        policy = created.json()["id"]
        body = {"name": "n", "kind": "csat", "delivery": {"webhook_url": LONG_PATH_URL}}
        response = await client.put(f"/v1/survey-policies/{policy}", json=body)
        assert response.status_code == 422, response.text
        assert response.json()["error"]["details"][0]["field"] == "delivery.webhook_url"
        fits = {"name": "n", "kind": "csat", "delivery": {"webhook_url": LONG_PATH_URL[:300]}}
        assert (await client.put(f"/v1/survey-policies/{policy}", json=fits)).status_code == 200
        # The run's database is shared: leave the built-in default survey policy in force.
        assert (await client.delete(f"/v1/survey-policies/{policy}")).status_code == 204
