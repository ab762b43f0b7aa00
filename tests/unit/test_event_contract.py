"""The published event contract: a JSON Schema per CloudEvent type and the AsyncAPI document,
generated from ``shared/events.py``, committed up to date, and true of the events on the bus."""

from __future__ import annotations

import json
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from services.router.app import create_app as router_app
from services.sla.app import create_app as sla_app
from services.survey.app import create_app as survey_app
from shared.bus import MemoryBus, Message
from shared.event_contract import DOCS, example_message, stale
from shared.events import EVENT_TYPES
from shared.migrate import upgrade_all
from tests.conftest import eventually, make_settings, running


def validator(event_type: str) -> jsonschema.Draft7Validator:
    schema = json.loads((DOCS / "schemas" / f"{event_type}.json").read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema, format_checker=jsonschema.FormatChecker())


def test_committed_files_are_up_to_date() -> None:
    assert stale() == [], "run: python -m shared.event_contract"


@pytest.mark.parametrize("event_type", sorted(EVENT_TYPES))
def test_each_event_type_validates_against_its_schema(event_type: str) -> None:
    check = validator(event_type)
    message = example_message(event_type)  # encoded by shared.events.encode, as published
    check.validate(message)
    # The schema is not a rubber stamp.
    assert not check.is_valid({**message, "type": "ticket.other"})
    assert not check.is_valid({k: v for k, v in message.items() if k != "data"})
    assert not check.is_valid({**message, "data": {}})


def test_asyncapi_lists_every_event_type_on_its_topic() -> None:
    document: dict[str, Any] = yaml.safe_load((DOCS / "asyncapi.yaml").read_text())
    assert document["asyncapi"] == "3.0.0"
    messages = document["components"]["messages"]
    assert {m["name"] for m in messages.values()} == set(EVENT_TYPES)
    for key, message in messages.items():
        model = EVENT_TYPES[message["name"]]
        channel = document["channels"][model.topic]
        assert channel["address"] == f"ticketflow.{model.topic}"
        assert channel["messages"][key] == {"$ref": f"#/components/messages/{key}"}
        ref = message["payload"]["schema"]["$ref"]
        assert (DOCS / ref).is_file(), ref
        for example in message["examples"]:
            validator(message["name"]).validate(example["payload"])
    for operation in document["operations"].values():
        assert operation["action"] in ("send", "receive")
        assert operation["channel"]["$ref"].removeprefix("#/channels/") in document["channels"]


async def test_events_published_by_the_services_match_their_schemas(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'ticketflow.db'}"
    await upgrade_all(url)
    settings = make_settings(url)
    bus = MemoryBus(partitions=2, max_retries=1, retry_base_seconds=0.01)
    await bus.start()
    seen: list[Message] = []

    async def record(message: Message) -> None:
        seen.append(message)

    topics = [settings.topic(t) for t in ("inbound", "tickets", "sla", "surveys")]
    subscription = await bus.subscribe(topics, "contract-check", record)
    try:
        async with AsyncExitStack() as stack:
            router = await stack.enter_async_context(running(router_app(settings, bus=bus)))
            await stack.enter_async_context(running(sla_app(settings, bus=bus)))
            await stack.enter_async_context(running(survey_app(settings, bus=bus)))
            created = await router.post(
                "/v1/tickets",
                json={"subject": "Contract", "channel": "email", "requester": {"id": "c-1"}},
            )
            assert created.status_code == 201, created.text
            ticket_id = created.json()["id"]
            reply = {"author": "agent", "public": True, "body": "Looking"}
            assert (await router.post(f"/v1/tickets/{ticket_id}/messages", json=reply)).is_success
            patch = {"status": "solved", "priority": "high"}
            assert (await router.patch(f"/v1/tickets/{ticket_id}", json=patch)).is_success

            def types() -> set[str]:
                return {json.loads(m.value)["type"] for m in seen}

            async def flowed() -> bool:
                return {"ticket.solved", "sla.met", "survey.scheduled"} <= types()

            await eventually(flowed)
    finally:
        await subscription.close()
        await bus.stop()
    assert len(types()) >= 6, types()
    for message in seen:
        body = json.loads(message.value)
        validator(body["type"]).validate(body)
        assert message.key == body["subject"]
