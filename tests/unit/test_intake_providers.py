"""Pure mapping of vendor payloads to canonical inbound events."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.router import providers
from shared import events as ev
from tests.intake_support import fixture

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def test_zendesk_event_subscription() -> None:
    parsed = providers.parse_zendesk(fixture("zendesk_status_changed"))
    [upsert] = parsed.events
    assert isinstance(upsert, ev.TicketUpsert)
    assert upsert.subject == "zendesk:35436"
    assert upsert.ticket.status == "pending" and upsert.ticket.priority == "low"
    assert upsert.ticket.assignee_id == "8447388090111"
    assert upsert.occurred_at == datetime(2026, 11, 22, 10, 5, tzinfo=UTC)
    assert parsed.delivery_id == "01HX0000000000000000STATUS"


def test_zendesk_assignment_and_comment() -> None:
    assigned = providers.parse_zendesk(fixture("zendesk_agent_assignment_changed")).events[0]
    assert isinstance(assigned, ev.TicketUpsert)
    assert assigned.ticket.assignee_id == "8447388090222"
    _, message = providers.parse_zendesk(fixture("zendesk_comment_added")).events
    assert isinstance(message, ev.TicketMessageReceived)
    assert message.message.author == "customer" and message.message.id == "8447388095555"


def test_zendesk_trigger_template() -> None:
    parsed = providers.parse_zendesk(fixture("zendesk_trigger"))
    upsert, message = parsed.events
    assert isinstance(message, ev.TicketMessageReceived)
    assert isinstance(upsert, ev.TicketUpsert)
    assert parsed.delivery_id is None
    assert upsert.ticket.status == "open" and upsert.ticket.priority == "high"
    assert upsert.ticket.channel == "email" and upsert.ticket.tags == ["login", "vip"]
    assert upsert.ticket.assignee_id is None
    assert upsert.ticket.requester is not None
    assert upsert.ticket.requester.email == "sam@example.com"


def test_freshdesk_names_and_numeric_codes() -> None:
    named = providers.parse_freshdesk(fixture("freshdesk_ticket_created"), NOW).events[0]
    coded = providers.parse_freshdesk(fixture("freshdesk_ticket_updated_numeric"), NOW).events[0]
    assert isinstance(named, ev.TicketUpsert) and isinstance(coded, ev.TicketUpsert)
    assert (named.ticket.status, named.ticket.priority, named.ticket.channel) == (
        "open",
        "normal",
        "email",
    )
    assert (coded.ticket.status, coded.ticket.priority) == ("solved", "high")
    assert coded.ticket.tags == ["billing", "refund"]
    assert coded.occurred_at == datetime(2026, 11, 22, 12, 30, tzinfo=UTC)


def test_freshdesk_reply_is_an_agent_message() -> None:
    _, message = providers.parse_freshdesk(fixture("freshdesk_reply"), NOW).events
    assert isinstance(message, ev.TicketMessageReceived)
    assert message.message.author == "agent"


@pytest.mark.parametrize(
    ("status", "category", "resolution", "expected"),
    [
        ("Open", "new", None, "new"),
        ("In Progress", "indeterminate", None, "open"),
        ("Waiting for customer", "indeterminate", None, "pending"),
        ("Done", "done", None, "solved"),
        ("Resolved", "indeterminate", "Fixed", "solved"),
        ("Closed", "done", "Done", "closed"),
    ],
)
def test_jira_status(status: str, category: str, resolution: str | None, expected: str) -> None:
    fields = providers.JiraFields.model_validate(
        {
            "status": {"name": status, "statusCategory": {"key": category}},
            "resolution": {"name": resolution} if resolution else None,
        }
    )
    assert providers.jira_status(fields) == expected


def test_jira_issue_and_comment() -> None:
    updated = providers.parse_jira(fixture("jira_issue_updated_resolved"), "d-1").events[0]
    assert isinstance(updated, ev.TicketUpsert)
    assert updated.subject == "jira:HELP-7"
    assert (updated.ticket.status, updated.ticket.priority) == ("solved", "urgent")
    [comment] = providers.parse_jira(fixture("jira_comment_created")).events
    assert isinstance(comment, ev.TicketMessageReceived)
    assert comment.message.author == "agent" and comment.message.id == "10100"


def test_unknown_names_raise_mapping_errors() -> None:
    data = fixture("freshdesk_ticket_created")
    data["freshdesk_webhook"]["ticket_status"] = "Snoozed"
    with pytest.raises(providers.MappingError) as caught:
        providers.parse_freshdesk(data, NOW)
    assert caught.value.field == "freshdesk_webhook.ticket_status"
