"""Zendesk: event-subscription deliveries (``zen:event-type:ticket.*``) and the trigger template."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field, field_validator

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
    truthy,
)
from shared import events as ev

ZENDESK_STATUSES: dict[str, ev.Status] = {
    "new": "new",
    "open": "open",
    "pending": "pending",
    "hold": "on_hold",
    "on-hold": "on_hold",
    "on_hold": "on_hold",
    "on hold": "on_hold",
    "solved": "solved",
    "closed": "closed",
}
ZENDESK_PRIORITIES: dict[str, ev.Priority] = {
    "low": "low",
    "normal": "normal",
    "high": "high",
    "urgent": "urgent",
}
# Zendesk's via types (and the numeric via ids of the documented table). Only the types whose
# meaning is certain are mapped; ``mobile_sdk``, ``mobile``, ``any_channel`` and every other type
# are ``other`` rather than a guess. ``web_service`` is how Zendesk names its API channel.
ZENDESK_CHANNELS: dict[str, ev.Channel] = {
    "email": "email",
    "mail": "email",
    "4": "email",
    "web": "web",
    "web_form": "web",
    "0": "web",
    "web_widget": "web",
    "help_center": "web",
    "dropbox": "web",  # the feedback tab
    "17": "web",
    "chat": "chat",
    "native_messaging": "chat",
    "messaging": "chat",
    "chat_transcript": "chat",
    "voice": "phone",
    "phone": "phone",
    "phone_call_inbound": "phone",
    "phone_call_outbound": "phone",
    "voicemail": "phone",
    "api": "api",
    "web_service": "api",
    "5": "api",
    "twitter": "social",
    "twitter_dm": "social",
    "facebook": "social",
    "facebook_post": "social",
    "facebook_message": "social",
    "instagram_dm": "social",
    "whatsapp": "social",
}


def zendesk_channel(via: str | int | None) -> ev.Channel | None:
    """A via type (``web_service``), a via id (``5``) or its label (``Web Service``)."""
    raw = raw_value(via)
    if raw is None:
        return None
    return ZENDESK_CHANNELS.get(raw.lower().replace(" ", "_").replace("-", "_"), "other")


class ZendeskVia(Payload):
    channel: str | int | None = None


class ZendeskTicketDetail(Payload):
    id: str | int
    subject: str | None = None
    description: str | None = None
    status: str | None = None
    priority: str | None = None
    requester_id: str | int | None = None
    assignee_id: str | int | None = None
    group_id: str | int | None = None
    tags: list[str] | None = None
    via: ZendeskVia | None = None
    updated_at: datetime | None = None


class ZendeskEventPayload(Payload):
    """An event-subscription delivery (``type: zen:event-type:ticket.*``)."""

    type: str = Field(pattern=r"^zen:event-type:ticket\.[a-z_]+$")
    account_id: int
    id: str = Field(min_length=1, max_length=200)
    time: datetime
    subject: str
    detail: ZendeskTicketDetail
    event: dict[str, Any] = Field(default_factory=dict)


class ZendeskComment(Payload):
    id: str | int | None = None
    body: str | None = None
    is_public: bool | str | None = True
    author_id: str | int | None = None
    author_is_agent: bool | str | None = None


class ZendeskRequester(Payload):
    id: str | int | None = None
    email: str | None = None
    name: str | None = None

    _blank = field_validator("email", "name", mode="before")(blank_to_none)


class ZendeskTriggerTicket(Payload):
    id: str | int
    subject: str | None = None
    description: str | None = None
    status: str | None = None
    priority: str | None = None
    via: str | None = None
    requester: ZendeskRequester | None = None
    tags: list[str] | str | None = None
    group: str | None = None
    assignee_id: str | int | None = None
    updated_at: datetime
    latest_comment: ZendeskComment | None = None

    _blank = field_validator(
        "priority", "status", "group", "via", "assignee_id", "description", mode="before"
    )(blank_to_none)


class ZendeskTriggerPayload(Payload):
    """The trigger-template body documented in docs/webhooks.md (for installs without events)."""

    ticket: ZendeskTriggerTicket


def parse_zendesk(data: dict[str, Any], mappings: Mappings = NO_MAPPINGS) -> Parsed:
    if "type" in data or "detail" in data:
        return _zendesk_event(ZendeskEventPayload.model_validate(data), mappings)
    return _zendesk_trigger(ZendeskTriggerPayload.model_validate(data), mappings)


def _status(mappings: Mappings, value: str | int | None) -> Any:
    return map_value(mappings.status, ZENDESK_STATUSES, value, DEFAULT_STATUS)


def _priority(mappings: Mappings, value: str | int | None) -> Any:
    return map_value(mappings.priority, ZENDESK_PRIORITIES, value, DEFAULT_PRIORITY)


def _zendesk_event(payload: ZendeskEventPayload, mappings: Mappings) -> Parsed:
    detail = payload.detail
    kind = payload.type.removeprefix("zen:event-type:ticket.")
    external_id = ident(detail.id) or ""
    channel = zendesk_channel(detail.via.channel) if detail.via is not None else None
    ticket: dict[str, Any] = {
        "subject": detail.subject,
        "description": detail.description,
        "status": _status(mappings, detail.status),
        "priority": _priority(mappings, detail.priority),
        "source_status": raw_value(detail.status),
        "source_priority": raw_value(detail.priority),
        "channel": channel,
        "requester": (
            ev.Requester(id=f"zendesk:{ident(detail.requester_id)}")
            if ident(detail.requester_id)
            else None
        ),
        "tags": tag_list(detail.tags),
        "group": ident(detail.group_id),
        "assignee_id": ident(detail.assignee_id),
    }
    # The event object carries the change itself; it wins over the detail snapshot.
    current = payload.event.get("current")
    if kind == "status_changed" and isinstance(current, str):
        ticket["status"] = _status(mappings, current)
        ticket["source_status"] = raw_value(current)
    elif kind == "priority_changed" and isinstance(current, str):
        ticket["priority"] = _priority(mappings, current)
        ticket["source_priority"] = raw_value(current)
    elif kind == "agent_assignment_changed" and "current" in payload.event:
        ticket["assignee_id"] = ident(current) if isinstance(current, str | int) else None
    elif kind == "group_assignment_changed" and "current" in payload.event:
        ticket["group"] = ident(current) if isinstance(current, str | int) else None
    inbound = ev.InboundTicket(**ticket)
    common = {
        "source": "zendesk",
        "external_id": external_id,
        "occurred_at": payload.time,
        "delivery_id": payload.id,
    }
    events: list[ev.InboundEvent] = [ev.TicketUpsert(ticket=inbound, **common)]
    comment = payload.event.get("comment")
    if kind == "comment_added" and isinstance(comment, dict):
        parsed = _ZendeskEventComment.model_validate(comment)
        author = parsed.author or _ZendeskAuthor()
        events.append(
            ev.TicketMessageReceived(
                message=ev.InboundMessage(
                    id=ident(parsed.id),
                    author="agent" if author.is_staff else "customer",
                    author_id=ident(author.id),
                    public=truthy(parsed.is_public, True),
                    body=parsed.body or "",
                ),
                ticket=inbound,
                **common,
            )
        )
    return Parsed(events=events, delivery_id=payload.id)


class _ZendeskAuthor(Payload):
    id: str | int | None = None
    is_staff: bool = False
    name: str | None = None


class _ZendeskEventComment(Payload):
    id: str | int | None = None
    body: str | None = None
    is_public: bool | str | None = True
    author: _ZendeskAuthor | None = None


def _zendesk_trigger(payload: ZendeskTriggerPayload, mappings: Mappings) -> Parsed:
    data = payload.ticket
    requester = None
    if data.requester is not None and (data.requester.id or data.requester.email):
        requester = ev.Requester(
            id=f"zendesk:{ident(data.requester.id)}"
            if ident(data.requester.id)
            else (data.requester.email or "").lower(),
            email=data.requester.email,
            name=data.requester.name,
        )
    channel = zendesk_channel(data.via)
    inbound = ev.InboundTicket(
        subject=data.subject,
        description=data.description,
        status=_status(mappings, data.status),
        priority=_priority(mappings, data.priority),
        source_status=raw_value(data.status),
        source_priority=raw_value(data.priority),
        channel=channel,
        requester=requester,
        tags=tag_list(data.tags),
        group=data.group,
        assignee_id=ident(data.assignee_id),
    )
    common = {
        "source": "zendesk",
        "external_id": ident(data.id) or "",
        "occurred_at": data.updated_at,
    }
    events: list[ev.InboundEvent] = [ev.TicketUpsert(ticket=inbound, **common)]
    comment = data.latest_comment
    if comment is not None and comment.body:
        events.append(
            ev.TicketMessageReceived(
                message=ev.InboundMessage(
                    id=ident(comment.id),
                    author="agent" if truthy(comment.author_is_agent, False) else "customer",
                    author_id=ident(comment.author_id),
                    public=truthy(comment.is_public, True),
                    body=comment.body,
                ),
                ticket=inbound,
                **common,
            )
        )
    return Parsed(events=events)
