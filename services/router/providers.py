"""Helpdesk webhook payloads → canonical inbound events: pure functions, no I/O.

Each provider has pydantic models of the documented payload (unknown extra fields are ignored,
missing or mistyped required fields raise ``ValidationError`` naming the field) and a ``parse_*``
function returning a ``Parsed``: the canonical ``TicketUpsert`` / ``TicketMessageReceived``
events, the provider's delivery id (``None`` when the provider gives none), and the ticket id.

Unknown status, priority or channel names raise ``MappingError`` naming the field: a ticket
whose state ticketflow cannot represent is refused rather than guessed.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from shared import events as ev


class MappingError(ValueError):
    """A payload value has no canonical meaning; ``field`` is its dotted path."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class PayloadError(ValueError):
    """Pydantic-style errors whose ``loc`` is relative to the whole body."""

    def __init__(self, errors: list[Any]) -> None:
        super().__init__("invalid payload")
        self.errors = errors


@dataclass
class Parsed:
    events: list[ev.InboundEvent] = field(default_factory=list)
    delivery_id: str | None = None

    @property
    def ticket_ids(self) -> list[str]:
        return list(dict.fromkeys(e.subject for e in self.events))


class _Payload(BaseModel):
    model_config = ConfigDict(extra="ignore")


def _blank_to_none(value: Any) -> Any:
    if isinstance(value, str) and not value.strip():
        return None
    return value


def _id(value: str | int | None) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _lookup(table: dict[str, Any], value: str | int | None, path: str, what: str) -> Any:
    if value is None:
        return None
    key = str(value).strip().lower()
    if key == "":
        return None
    if key not in table:
        raise MappingError(path, f"unknown {what} {value!r}")
    return table[key]


def _tags(value: list[str] | str | None) -> list[str] | None:
    if value is None:
        return None
    items = value if isinstance(value, list) else value.replace(",", " ").split()
    return list(dict.fromkeys(t.strip().lower() for t in items if t and t.strip()))


def body_digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


# --- Zendesk ----------------------------------------------------------------------------------

ZENDESK_STATUSES: dict[str, ev.Status] = {
    "new": "new",
    "open": "open",
    "pending": "pending",
    "hold": "on_hold",
    "on-hold": "on_hold",
    "on_hold": "on_hold",
    "solved": "solved",
    "closed": "closed",
}
ZENDESK_PRIORITIES: dict[str, ev.Priority] = {
    "low": "low",
    "normal": "normal",
    "high": "high",
    "urgent": "urgent",
}
ZENDESK_CHANNELS: dict[str, ev.Channel] = {
    "email": "email",
    "mail": "email",
    "web": "web",
    "web_form": "web",
    "web_widget": "web",
    "mobile": "web",
    "help_center": "web",
    "chat": "chat",
    "native_messaging": "chat",
    "messaging": "chat",
    "voice": "phone",
    "phone": "phone",
    "sms": "phone",
    "api": "api",
    "twitter": "social",
    "facebook": "social",
    "instagram_dm": "social",
    "whatsapp": "social",
}


class ZendeskVia(_Payload):
    channel: str | int | None = None


class ZendeskTicketDetail(_Payload):
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


class ZendeskEventPayload(_Payload):
    """An event-subscription delivery (``type: zen:event-type:ticket.*``)."""

    type: str = Field(pattern=r"^zen:event-type:ticket\.[a-z_]+$")
    account_id: int
    id: str = Field(min_length=1, max_length=200)
    time: datetime
    subject: str
    detail: ZendeskTicketDetail
    event: dict[str, Any] = Field(default_factory=dict)


class ZendeskComment(_Payload):
    id: str | int | None = None
    body: str | None = None
    is_public: bool | str | None = True
    author_id: str | int | None = None
    author_is_agent: bool | str | None = None


class ZendeskRequester(_Payload):
    id: str | int | None = None
    email: str | None = None
    name: str | None = None

    _blank = field_validator("email", "name", mode="before")(_blank_to_none)


class ZendeskTriggerTicket(_Payload):
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
    )(_blank_to_none)


class ZendeskTriggerPayload(_Payload):
    """The trigger-template body documented in docs/webhooks.md (for installs without events)."""

    ticket: ZendeskTriggerTicket


def _truthy(value: bool | str | None, default: bool) -> bool:
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    return value.strip().lower() in ("true", "1", "yes")


def parse_zendesk(data: dict[str, Any]) -> Parsed:
    if "type" in data or "detail" in data:
        return _zendesk_event(ZendeskEventPayload.model_validate(data))
    return _zendesk_trigger(ZendeskTriggerPayload.model_validate(data))


def _zendesk_event(payload: ZendeskEventPayload) -> Parsed:
    detail = payload.detail
    kind = payload.type.removeprefix("zen:event-type:ticket.")
    external_id = _id(detail.id) or ""
    channel = None
    if detail.via is not None and detail.via.channel is not None:
        channel = ZENDESK_CHANNELS.get(str(detail.via.channel).lower(), "other")
    ticket: dict[str, Any] = {
        "subject": detail.subject,
        "description": detail.description,
        "status": _lookup(ZENDESK_STATUSES, detail.status, "detail.status", "status"),
        "priority": _lookup(ZENDESK_PRIORITIES, detail.priority, "detail.priority", "priority"),
        "channel": channel,
        "requester": (
            ev.Requester(id=f"zendesk:{_id(detail.requester_id)}")
            if _id(detail.requester_id)
            else None
        ),
        "tags": _tags(detail.tags),
        "group": _id(detail.group_id),
        "assignee_id": _id(detail.assignee_id),
    }
    # The event object carries the change itself; it wins over the detail snapshot.
    current = payload.event.get("current")
    if kind == "status_changed" and isinstance(current, str):
        ticket["status"] = _lookup(ZENDESK_STATUSES, current, "event.current", "status")
    elif kind == "priority_changed" and isinstance(current, str):
        ticket["priority"] = _lookup(ZENDESK_PRIORITIES, current, "event.current", "priority")
    elif kind == "agent_assignment_changed" and "current" in payload.event:
        ticket["assignee_id"] = _id(current) if isinstance(current, str | int) else None
    elif kind == "group_assignment_changed" and "current" in payload.event:
        ticket["group"] = _id(current) if isinstance(current, str | int) else None
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
                    id=_id(parsed.id),
                    author="agent" if author.is_staff else "customer",
                    author_id=_id(author.id),
                    public=_truthy(parsed.is_public, True),
                    body=parsed.body or "",
                ),
                ticket=inbound,
                **common,
            )
        )
    return Parsed(events=events, delivery_id=payload.id)


class _ZendeskAuthor(_Payload):
    id: str | int | None = None
    is_staff: bool = False
    name: str | None = None


class _ZendeskEventComment(_Payload):
    id: str | int | None = None
    body: str | None = None
    is_public: bool | str | None = True
    author: _ZendeskAuthor | None = None


def _zendesk_trigger(payload: ZendeskTriggerPayload) -> Parsed:
    data = payload.ticket
    requester = None
    if data.requester is not None and (data.requester.id or data.requester.email):
        requester = ev.Requester(
            id=f"zendesk:{_id(data.requester.id)}"
            if _id(data.requester.id)
            else (data.requester.email or "").lower(),
            email=data.requester.email,
            name=data.requester.name,
        )
    channel = (
        ZENDESK_CHANNELS.get(data.via.strip().lower().replace(" ", "_"), "other")
        if data.via
        else None
    )
    inbound = ev.InboundTicket(
        subject=data.subject,
        description=data.description,
        status=_lookup(ZENDESK_STATUSES, data.status, "ticket.status", "status"),
        priority=_lookup(ZENDESK_PRIORITIES, data.priority, "ticket.priority", "priority"),
        channel=channel,
        requester=requester,
        tags=_tags(data.tags),
        group=data.group,
        assignee_id=_id(data.assignee_id),
    )
    common = {
        "source": "zendesk",
        "external_id": _id(data.id) or "",
        "occurred_at": data.updated_at,
    }
    events: list[ev.InboundEvent] = [ev.TicketUpsert(ticket=inbound, **common)]
    comment = data.latest_comment
    if comment is not None and comment.body:
        events.append(
            ev.TicketMessageReceived(
                message=ev.InboundMessage(
                    id=_id(comment.id),
                    author="agent" if _truthy(comment.author_is_agent, False) else "customer",
                    author_id=_id(comment.author_id),
                    public=_truthy(comment.is_public, True),
                    body=comment.body,
                ),
                ticket=inbound,
                **common,
            )
        )
    return Parsed(events=events)


# --- Freshdesk --------------------------------------------------------------------------------

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


class FreshdeskTicket(_Payload):
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
    )(_blank_to_none)


class FreshdeskPayload(_Payload):
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
            if _id(hook.ticket_requester_id)
            else (hook.ticket_requester_email or "").lower(),
            email=hook.ticket_requester_email,
            name=hook.ticket_requester_name,
        )
    inbound = ev.InboundTicket(
        subject=hook.ticket_subject,
        description=hook.ticket_description,
        status=_lookup(FRESHDESK_STATUSES, hook.ticket_status, prefix + "ticket_status", "status"),
        priority=_lookup(
            FRESHDESK_PRIORITIES, hook.ticket_priority, prefix + "ticket_priority", "priority"
        ),
        channel=None
        if hook.ticket_source is None
        else FRESHDESK_SOURCES.get(str(hook.ticket_source).strip().lower(), "other"),
        requester=requester,
        tags=_tags(hook.ticket_tags),
        group=hook.ticket_group_name,
        assignee_id=hook.ticket_agent_email,
    )
    common = {
        "source": "freshdesk",
        "external_id": _id(hook.ticket_id) or "",
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


# --- Jira -------------------------------------------------------------------------------------

JIRA_PRIORITIES: dict[str, ev.Priority] = {
    "highest": "urgent",
    "blocker": "urgent",
    "critical": "urgent",
    "urgent": "urgent",
    "high": "high",
    "major": "high",
    "medium": "normal",
    "normal": "normal",
    "low": "low",
    "lowest": "low",
    "minor": "low",
    "trivial": "low",
}
JIRA_PENDING = {"waiting for customer", "pending", "waiting for reporter"}
JIRA_ON_HOLD = {"on hold", "waiting for third party", "waiting for support", "blocked"}


class JiraNamed(_Payload):
    name: str | None = None


class JiraStatusCategory(_Payload):
    key: str | None = None


class JiraStatus(_Payload):
    name: str
    statusCategory: JiraStatusCategory | None = None


class JiraUser(_Payload):
    accountId: str | None = None
    name: str | None = None
    emailAddress: str | None = None
    displayName: str | None = None

    @property
    def key(self) -> str | None:
        return self.accountId or self.name or self.emailAddress


class JiraFields(_Payload):
    summary: str | None = None
    description: str | dict[str, Any] | None = None
    status: JiraStatus | None = None
    priority: JiraNamed | None = None
    resolution: JiraNamed | None = None
    labels: list[str] | None = None
    assignee: JiraUser | None = None
    reporter: JiraUser | None = None
    updated: str | None = None


class JiraIssue(_Payload):
    id: str | int | None = None
    key: str = Field(min_length=1, max_length=200)
    fields: JiraFields = Field(default_factory=JiraFields)


class JiraChangeItem(_Payload):
    field: str
    fromString: str | None = None
    toString: str | None = None


class JiraChangelog(_Payload):
    id: str | int | None = None
    items: list[JiraChangeItem] = Field(default_factory=list)


class JiraComment(_Payload):
    id: str | int
    body: str | dict[str, Any] | None = None
    author: JiraUser | None = None
    jsdPublic: bool = True


class JiraPayload(_Payload):
    timestamp: int = Field(gt=0)
    webhookEvent: Literal["jira:issue_created", "jira:issue_updated", "comment_created"]
    issue: JiraIssue
    changelog: JiraChangelog | None = None
    comment: JiraComment | None = None


def _adf_text(value: str | dict[str, Any] | None) -> str | None:
    """Plain text of a description that Jira Cloud sends as Atlassian Document Format."""
    if value is None or isinstance(value, str):
        return value
    parts: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") == "text" and isinstance(node.get("text"), str):
                parts.append(node["text"])
            for child in node.get("content") or []:
                walk(child)
            if node.get("type") == "paragraph":
                parts.append("\n")

    walk(value)
    return "".join(parts).strip() or None


def jira_status(fields: JiraFields) -> ev.Status | None:
    if fields.status is None:
        return None
    category = (fields.status.statusCategory.key if fields.status.statusCategory else None) or ""
    name = fields.status.name.strip().lower()
    if name == "closed":
        return "closed"
    if category == "done" or (fields.resolution is not None and fields.resolution.name):
        return "solved"
    if name in JIRA_PENDING:
        return "pending"
    if name in JIRA_ON_HOLD:
        return "on_hold"
    if category == "new":
        return "new"
    return "open"


def jira_timestamp(payload: JiraPayload) -> datetime:
    return datetime.fromtimestamp(payload.timestamp / 1000, tz=UTC)


def parse_jira(data: dict[str, Any], delivery_id: str | None = None) -> Parsed:
    payload = JiraPayload.model_validate(data)
    fields = payload.issue.fields
    reporter = fields.reporter
    requester = None
    if reporter is not None and reporter.key:
        requester = ev.Requester(
            id=f"jira:{reporter.key}", email=reporter.emailAddress, name=reporter.displayName
        )
    priority = None
    if fields.priority is not None:
        priority = _lookup(
            JIRA_PRIORITIES, fields.priority.name, "issue.fields.priority.name", "priority"
        )
    inbound = ev.InboundTicket(
        subject=fields.summary,
        description=_adf_text(fields.description),
        status=jira_status(fields),
        priority=priority,
        channel="web",
        requester=requester,
        tags=_tags(fields.labels),
        assignee_id=fields.assignee.key if fields.assignee else None,
    )
    common = {
        "source": "jira",
        "external_id": payload.issue.key,
        "occurred_at": jira_timestamp(payload),
        "delivery_id": delivery_id,
    }
    events: list[ev.InboundEvent] = []
    if payload.webhookEvent == "comment_created":
        if payload.comment is None:
            raise MappingError("comment", "comment_created needs a comment")
        author = payload.comment.author
        by_reporter = author is not None and reporter is not None and author.key == reporter.key
        events.append(
            ev.TicketMessageReceived(
                message=ev.InboundMessage(
                    id=_id(payload.comment.id),
                    author="customer" if by_reporter else "agent",
                    author_id=author.key if author else None,
                    public=payload.comment.jsdPublic,
                    body=_adf_text(payload.comment.body) or "",
                ),
                ticket=inbound,
                **common,
            )
        )
    else:
        events.append(ev.TicketUpsert(ticket=inbound, **common))
    return Parsed(events=events, delivery_id=delivery_id)


# --- generic ----------------------------------------------------------------------------------


class GenericPayload(_Payload):
    """One canonical inbound event: CloudEvents-style ``type`` + ``data`` (section 6)."""

    type: Literal["ticket.upsert", "ticket.message"]
    data: dict[str, Any]


def parse_generic(data: dict[str, Any], delivery_id: str | None) -> Parsed:
    payload = GenericPayload.model_validate(data)
    model = ev.EVENT_TYPES[payload.type]
    try:
        event = model.model_validate({**payload.data, "delivery_id": delivery_id})
    except ValidationError as exc:
        raise PayloadError(
            [{**e, "loc": ("data", *e.get("loc", ()))} for e in exc.errors()]
        ) from exc
    assert isinstance(event, ev.InboundEvent)
    return Parsed(events=[event], delivery_id=delivery_id)
