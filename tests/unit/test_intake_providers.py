"""Pure mapping of vendor payloads to canonical inbound events."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

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


def test_freshdesk_simple_placeholders_and_unknown_status() -> None:
    """``requester_name``/``requester_email`` (Freshdesk's simple placeholders); a custom status
    is kept raw and mapped to the safe default instead of refusing the ticket."""
    [upsert] = providers.parse_freshdesk(fixture("freshdesk_simple_placeholders"), NOW).events
    assert isinstance(upsert, ev.TicketUpsert)
    requester = upsert.ticket.requester
    assert requester is not None
    assert (requester.email, requester.name) == ("bob@example.com", "Bob Requester")
    assert (upsert.ticket.status, upsert.ticket.source_status) == ("open", "Awaiting parts")
    assert (upsert.ticket.priority, upsert.ticket.source_priority) == ("high", "High")


def test_freshdesk_custom_status_code_and_admin_mapping() -> None:
    data = fixture("freshdesk_custom_status_code")
    [plain] = providers.parse_freshdesk(data, NOW).events
    assert isinstance(plain, ev.TicketUpsert)
    assert (plain.ticket.status, plain.ticket.source_status) == ("open", "6")
    assert (plain.ticket.priority, plain.ticket.channel) == ("urgent", "web")
    mapped = providers.Mappings.of({"6": "on_hold"}, {"4": "high"})
    [upsert] = providers.parse_freshdesk(data, NOW, mapped).events
    assert isinstance(upsert, ev.TicketUpsert)
    assert (upsert.ticket.status, upsert.ticket.priority) == ("on_hold", "high")


@pytest.mark.parametrize(
    ("via", "channel"),
    [
        ("web_service", "api"),
        ("api", "api"),
        (5, "api"),
        ("mobile_sdk", "other"),
        ("mobile", "other"),
        ("any_channel", "other"),
        ("web_form", "web"),
        ("email", "email"),
        ("Web Service", "api"),
    ],
)
def test_zendesk_via_channel(via: str | int, channel: str) -> None:
    data = fixture("zendesk_ticket_created")
    data["detail"]["via"] = {"channel": via}
    [upsert] = providers.parse_zendesk(data).events
    assert isinstance(upsert, ev.TicketUpsert)
    assert upsert.ticket.channel == channel


def test_zendesk_custom_status_is_kept_raw() -> None:
    [upsert] = providers.parse_zendesk(fixture("zendesk_custom_status_web_service")).events
    assert isinstance(upsert, ev.TicketUpsert)
    assert (upsert.ticket.status, upsert.ticket.source_status) == ("open", "Awaiting vendor")
    assert (upsert.ticket.priority, upsert.ticket.channel) == ("normal", "api")
    mapped = providers.Mappings.of({"Awaiting Vendor": "on_hold"}, {})
    [again] = providers.parse_zendesk(fixture("zendesk_custom_status_web_service"), mapped).events
    assert isinstance(again, ev.TicketUpsert) and again.ticket.status == "on_hold"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Highest", "urgent"),
        ("P1", "urgent"),
        ("High", "high"),
        ("P2", "high"),
        ("Medium", "normal"),
        ("P3", "normal"),
        ("Low", "low"),
        ("Lowest", "low"),
        ("P4", "low"),
        ("P5", "low"),
        ("Sev-0 (custom)", "normal"),
    ],
)
def test_jira_priorities(name: str, expected: str) -> None:
    data = fixture("jira_jsm_issue_created_p1")
    data["issue"]["fields"]["priority"]["name"] = name
    [upsert] = providers.parse_jira(data).events
    assert isinstance(upsert, ev.TicketUpsert)
    assert (upsert.ticket.priority, upsert.ticket.source_priority) == (expected, name)


@pytest.mark.parametrize(
    ("status", "category", "expected"),
    [
        ("Waiting for support", "indeterminate", "open"),
        ("Waiting for customer", "indeterminate", "pending"),
        ("In Progress", "indeterminate", "open"),
        ("Work in progress", "indeterminate", "open"),
        ("Pending", "indeterminate", "pending"),
        ("Escalated", "indeterminate", "open"),
        ("Awaiting approval", "indeterminate", "on_hold"),
        ("Open", "new", "new"),
        ("Reopened", "new", "open"),
        ("Resolved", "done", "solved"),
        ("Done", "done", "solved"),
        ("Closed", "done", "closed"),
        ("Canceled", "done", "closed"),
        ("Triage (custom)", "indeterminate", "open"),
    ],
)
def test_jsm_default_statuses(status: str, category: str, expected: str) -> None:
    fields = providers.JiraFields.model_validate(
        {"status": {"name": status, "statusCategory": {"key": category}}}
    )
    assert providers.jira_status(fields) == expected


def test_jira_comment_authors() -> None:
    """Participant and customer accounts are the customer; an author that cannot be told apart
    (no reporter in the payload, no account type) is never an agent reply."""
    [by_participant] = providers.parse_jira(fixture("jira_comment_created_cloud")).events
    assert isinstance(by_participant, ev.TicketMessageReceived)
    assert by_participant.message.author == "customer"

    issue = fixture("jira_jsm_issue_created_p1")["issue"]
    data = fixture("jira_comment_created_cloud")
    data["issue"] = issue
    data["comment"]["author"] = {"accountId": "qm:9a8b7c6d-portal", "displayName": "Lee"}
    [listed] = providers.parse_jira(data).events
    assert isinstance(listed, ev.TicketMessageReceived) and listed.message.author == "customer"

    data["comment"]["author"] = {
        "accountId": "5b10ac8d82e05b22cc7d4ef5",
        "accountType": "atlassian",
    }
    [staff] = providers.parse_jira(data).events
    assert isinstance(staff, ev.TicketMessageReceived) and staff.message.author == "agent"
    assert staff.message.public is True

    unknown = fixture("jira_comment_created")
    del unknown["issue"]["fields"]["reporter"]
    [anonymous] = providers.parse_jira(unknown).events
    assert isinstance(anonymous, ev.TicketMessageReceived)
    assert anonymous.message.author == "customer"


def test_not_the_vendor_format_still_fails() -> None:
    with pytest.raises(ValidationError):
        providers.parse_freshdesk({"ticket": {"id": 1}}, NOW)
    with pytest.raises(ValidationError):
        providers.parse_jira({"webhookEvent": "jira:issue_created", "timestamp": 1})
