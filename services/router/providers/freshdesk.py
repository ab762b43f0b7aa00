"""Freshdesk: automation-rule webhooks (``{"freshdesk_webhook": {...}}``)."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from pydantic import field_validator

from services.router.providers.base import Parsed, Payload, blank_to_none, ident, lookup, tag_list
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
    "outbound email": "email",
    "twitter": "social",
    "facebook": "social",
    "whatsapp": "social",
}


class FreshdeskTicket(Payload):
    ticket_id: str | int
    ticket_subject: str | None = None
    ticket_description: str | None = None
    ticket_status: str | int | None = None
    ticket_priority: str | int | None = None
    ticket_source: str | int | None = None
    ticket_tags: str | list[str] | None = None
    ticket_group_name: str | None = None
    ticket_agent_email: str | None = None
    ticket_requester_email: str | None = None
    ticket_requester_name: str | None = None
    ticket_requester_id: str | int | None = None
    ticket_latest_public_comment: str | None = None
    ticket_updated_at: datetime | None = None
    triggered_event: str | None = None

    _blank = field_validator(
        "ticket_group_name",
        "ticket_agent_email",
        "ticket_requester_email",
        "ticket_requester_name",
        "ticket_latest_public_comment",
        "ticket_updated_at",
        "ticket_status",
        "ticket_priority",
        "ticket_source",
        mode="before",
    )(blank_to_none)


class FreshdeskPayload(Payload):
    freshdesk_webhook: FreshdeskTicket


def parse_freshdesk(data: dict[str, Any], received_at: datetime) -> Parsed:
    """Freshdesk sends no event id or time: ``ticket_updated_at`` when the rule includes it,
    else the moment of receipt orders the reports."""
    hook = FreshdeskPayload.model_validate(data).freshdesk_webhook
    prefix = "freshdesk_webhook."
    requester = None
    if hook.ticket_requester_id is not None or hook.ticket_requester_email:
        requester = ev.Requester(
            id=f"freshdesk:{hook.ticket_requester_id}"
            if ident(hook.ticket_requester_id)
            else (hook.ticket_requester_email or "").lower(),
            email=hook.ticket_requester_email,
            name=hook.ticket_requester_name,
        )
    inbound = ev.InboundTicket(
        subject=hook.ticket_subject,
        description=hook.ticket_description,
        status=lookup(FRESHDESK_STATUSES, hook.ticket_status, prefix + "ticket_status", "status"),
        priority=lookup(
            FRESHDESK_PRIORITIES, hook.ticket_priority, prefix + "ticket_priority", "priority"
        ),
        channel=None
        if hook.ticket_source is None
        else FRESHDESK_SOURCES.get(str(hook.ticket_source).strip().lower(), "other"),
        requester=requester,
        tags=tag_list(hook.ticket_tags),
        group=hook.ticket_group_name,
        assignee_id=hook.ticket_agent_email,
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
