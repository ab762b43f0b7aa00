"""Freshdesk: automation-rule webhooks (``{"freshdesk_webhook": {...}}``)."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from pydantic import AliasChoices, Field, field_validator

from services.router.providers.base import (
    DEFAULT_PRIORITY,
    DEFAULT_STATUS,
    NO_MAPPINGS,
    Mappings,
    Parsed,
    Payload,
    blank_to_none,
    ident,
    map_value,
    raw_value,
    tag_list,
)
from shared import events as ev

FRESHDESK_STATUSES: dict[str, ev.Status] = {
    "2": "open",
    "3": "pending",
    "4": "solved",
    "5": "closed",
    "open": "open",
    "pending": "pending",
    "resolved": "solved",
    "closed": "closed",
    "waiting on customer": "pending",
    "waiting on third party": "on_hold",
}
FRESHDESK_PRIORITIES: dict[str, ev.Priority] = {
    "1": "low",
    "2": "normal",
    "3": "high",
    "4": "urgent",
    "low": "low",
    "medium": "normal",
    "high": "high",
    "urgent": "urgent",
}
FRESHDESK_SOURCES: dict[str, ev.Channel] = {
    "1": "email",
    "2": "web",
    "3": "phone",
    "7": "chat",
    "9": "web",
    "10": "email",
    "email": "email",
    "portal": "web",
    "phone": "phone",
    "chat": "chat",
    "feedback widget": "web",
    "mobihelp": "other",
    "outbound email": "email",
    "twitter": "social",
    "facebook": "social",
    "whatsapp": "social",
}


def _names(*names: str) -> Any:
    """A field filled by any of the placeholder names admins commonly give it."""
    return Field(default=None, validation_alias=AliasChoices(*names))


class FreshdeskTicket(Payload):
    """The webhook body an automation rule sends: each key is a placeholder the admin named.

    Freshdesk's own guides and public integrations name the same field several ways
    (``requester_email`` for ``{{ticket.requester.email}}``, or ``ticket_requester_email``...):
    every common name is accepted.
    """

    ticket_id: str | int = Field(validation_alias=AliasChoices("ticket_id", "id", "ticket_number"))
    ticket_subject: str | None = _names("ticket_subject", "subject")
    ticket_description: str | None = _names(
        "ticket_description", "description", "ticket_description_text", "description_text"
    )
    ticket_status: str | int | None = _names("ticket_status", "status")
    ticket_priority: str | int | None = _names("ticket_priority", "priority")
    ticket_source: str | int | None = _names("ticket_source", "source")
    ticket_tags: str | list[str] | None = _names("ticket_tags", "tags")
    ticket_group_name: str | None = _names(
        "ticket_group_name", "group_name", "ticket_group", "group"
    )
    ticket_agent_email: str | None = _names(
        "ticket_agent_email", "agent_email", "responder_email", "ticket_responder_email"
    )
    ticket_requester_email: str | None = _names(
        "ticket_requester_email",
        "requester_email",
        "ticket_contact_email",
        "contact_email",
    )
    ticket_requester_name: str | None = _names(
        "ticket_requester_name", "requester_name", "ticket_contact_name", "contact_name"
    )
    ticket_requester_id: str | int | None = _names(
        "ticket_requester_id", "requester_id", "ticket_contact_id", "contact_id"
    )
    ticket_latest_public_comment: str | None = _names(
        "ticket_latest_public_comment", "latest_public_comment", "ticket_latest_comment"
    )
    ticket_updated_at: datetime | None = _names("ticket_updated_at", "updated_at")
    triggered_event: str | None = None

    _blank = field_validator(
        "ticket_group_name",
        "ticket_agent_email",
        "ticket_requester_email",
        "ticket_requester_name",
        "ticket_requester_id",
        "ticket_latest_public_comment",
        "ticket_updated_at",
        "ticket_status",
        "ticket_priority",
        "ticket_source",
        mode="before",
    )(blank_to_none)


class FreshdeskPayload(Payload):
    freshdesk_webhook: FreshdeskTicket


def parse_freshdesk(
    data: dict[str, Any], received_at: datetime, mappings: Mappings = NO_MAPPINGS
) -> Parsed:
    """Freshdesk sends no event id or time: ``ticket_updated_at`` when the rule includes it,
    else the moment of receipt orders the reports."""
    hook = FreshdeskPayload.model_validate(data).freshdesk_webhook
    requester = None
    requester_id = ident(hook.ticket_requester_id)
    if requester_id or hook.ticket_requester_email:
        requester = ev.Requester(
            id=f"freshdesk:{requester_id}"
            if requester_id
            else (hook.ticket_requester_email or "").lower(),
            email=hook.ticket_requester_email,
            name=hook.ticket_requester_name,
        )
    inbound = ev.InboundTicket(
        subject=hook.ticket_subject,
        description=hook.ticket_description,
        status=map_value(mappings.status, FRESHDESK_STATUSES, hook.ticket_status, DEFAULT_STATUS),
        priority=map_value(
            mappings.priority, FRESHDESK_PRIORITIES, hook.ticket_priority, DEFAULT_PRIORITY
        ),
        channel=None
        if hook.ticket_source is None
        else FRESHDESK_SOURCES.get(str(hook.ticket_source).strip().lower(), "other"),
        requester=requester,
        tags=tag_list(hook.ticket_tags),
        group=hook.ticket_group_name,
        assignee_id=hook.ticket_agent_email,
        source_status=raw_value(hook.ticket_status),
        source_priority=raw_value(hook.ticket_priority),
    )
    common = {
        "source": "freshdesk",
        "external_id": ident(hook.ticket_id) or "",
        "occurred_at": hook.ticket_updated_at or received_at,
    }
    events: list[ev.InboundEvent] = [ev.TicketUpsert(ticket=inbound, **common)]
    comment = hook.ticket_latest_public_comment
    if comment:
        by_agent = "reply_sent" in (hook.triggered_event or "") or "agent" in (
            hook.triggered_event or ""
        )
        events.append(
            ev.TicketMessageReceived(
                # Freshdesk gives the comment no id: its text names it, so a redelivery
                # of the same comment is one message.
                message=ev.InboundMessage(
                    id="c" + hashlib.sha256(comment.encode()).hexdigest()[:24],
                    author="agent" if by_agent else "customer",
                    public=True,
                    body=comment,
                ),
                ticket=inbound,
                **common,
            )
        )
    return Parsed(events=events)
