"""Event models and the CloudEvents envelope."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from shared import events as ev

CONTRACT_TYPES = {
    "inbound": {"ticket.upsert", "ticket.message"},
    "tickets": {
        "ticket.created",
        "ticket.updated",
        "ticket.message_added",
        "ticket.status_changed",
        "ticket.solved",
        "ticket.reopened",
        "ticket.closed",
        "ticket.prioritized",
        "ticket.assigned",
        "ticket.unassigned",
    },
    "sla": {
        "sla.started",
        "sla.paused",
        "sla.resumed",
        "sla.met",
        "sla.warning",
        "sla.breached",
        "sla.escalated",
        "goal.at_risk",
        "goal.missed",
        "goal.met",
        "goal.recovered",
    },
    "surveys": {
        "survey.scheduled",
        "survey.sent",
        "survey.answered",
        "survey.cancelled",
        "survey.expired",
        "survey.follow_up_required",
    },
}


def test_every_contract_type_is_registered_on_its_topic() -> None:
    registered: dict[str, set[str]] = {}
    for name, model in ev.EVENT_TYPES.items():
        registered.setdefault(model.topic, set()).add(name)
    assert registered == CONTRACT_TYPES


def _snapshot() -> ev.TicketSnapshot:
    now = datetime(2026, 3, 29, 0, 30, tzinfo=UTC)
    return ev.TicketSnapshot(
        id="zendesk:35436",
        source="zendesk",
        external_id="35436",
        subject="Help",
        status="open",
        priority="high",
        channel="email",
        requester=ev.Requester(id="r1", email="r@example.com", tier="vip"),
        tags=["billing"],
        created_at=now,
        updated_at=now,
    )


def test_structured_cloudevent_round_trip() -> None:
    event = ev.TicketAssigned(ticket=_snapshot(), previous_assignee_id=None, reason="least_loaded")
    key, value, headers = ev.encode(
        event, source="/ticketflow/router", traceparent="00-" + "a" * 32 + "-" + "b" * 16 + "-01"
    )
    assert key == "zendesk:35436"
    assert headers["content-type"] == b"application/cloudevents+json"
    body = json.loads(value)
    assert body["specversion"] == "1.0"
    assert body["type"] == "ticket.assigned"
    assert body["subject"] == "zendesk:35436"
    assert body["datacontenttype"] == "application/json"
    assert body["traceparent"].startswith("00-aaaa")
    envelope = ev.decode(value, key)
    assert ev.parse_event(envelope) == event


def test_events_are_frozen() -> None:
    event = ev.TicketSolved(ticket=_snapshot())
    with pytest.raises(ValidationError):
        event.ticket = _snapshot()  # type: ignore[misc]


@pytest.mark.parametrize(
    "value",
    [
        b"not json",
        b"[]",
        b'{"specversion": "1.0"}',
        b'{"id":"1","source":"/x","type":"t","specversion":"1.0","data":"text"}',
    ],
)
def test_undecodable_messages_raise_decode_error(value: bytes) -> None:
    with pytest.raises(ev.EventDecodeError):
        ev.decode(value)


def test_unknown_type_and_bad_data_raise_decode_error() -> None:
    envelope = ev.Envelope(id="1", source="/x", type="ticket.exploded", data={})
    with pytest.raises(ev.EventDecodeError, match="unknown event type"):
        ev.parse_event(envelope)
    envelope = ev.Envelope(id="1", source="/x", type="ticket.created", data={"ticket": {"id": 3}})
    with pytest.raises(ev.EventDecodeError, match=r"ticket\.created"):
        ev.parse_event(envelope)


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        (b'{"specversion":"1.0","type":"sla.started","id":"1","source":"/x"}', "sla.started"),
        (b'{"type": 3}', None),
        (b"[]", None),
        (b"not json", None),
    ],
)
def test_a_message_type_is_read_without_decoding_the_event(value: bytes, kind: str | None) -> None:
    assert ev.peek_type(value) == kind


async def test_a_consumer_passes_over_types_it_does_not_handle_and_still_refuses_garbage() -> None:
    from shared.bus import Message, PermanentError
    from shared.runtime import ServiceRuntime

    handled: list[ev.Event] = []

    async def on_assigned(_: Any, event: ev.Event) -> None:
        handled.append(event)

    runtime = ServiceRuntime.__new__(ServiceRuntime)  # _prepare needs only these two
    runtime.name, runtime.handlers = "probe", {ev.TicketAssigned: on_assigned}
    created = ev.TicketCreated(ticket=_snapshot())
    key, value, _ = ev.encode(created, source="test")
    assert runtime._prepare(Message("tickets", 0, 0, key, value)) is None  # not decoded at all
    assigned = ev.TicketAssigned(ticket=_snapshot(), previous_assignee_id=None, reason="x")
    key, value, _ = ev.encode(assigned, source="test")
    prepared = runtime._prepare(Message("tickets", 0, 1, key, value))
    assert prepared is not None and isinstance(prepared[1], ev.TicketAssigned)
    document = json.loads(value)
    document["data"]["ticket"]["id"] = 3  # a handled type whose data does not fit it
    broken = json.dumps(document).encode()
    for bad in (b"garbage", broken):
        with pytest.raises(PermanentError):
            runtime._prepare(Message("tickets", 0, 2, key, bad))
