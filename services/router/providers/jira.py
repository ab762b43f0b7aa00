"""Jira Cloud and Jira Service Management: ``jira:issue_*`` and ``comment_created`` webhooks."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import ConfigDict, Field

from services.router.providers.base import (
    DEFAULT_PRIORITY,
    NO_MAPPINGS,
    MappingError,
    Mappings,
    Parsed,
    Payload,
    ident,
    map_value,
    raw_value,
    tag_list,
)
from shared import events as ev

# Jira's default scheme (Highest, High, Medium, Low, Lowest), the P1-P5 scheme of Jira Service
# Management and the older Blocker...Trivial names; anything else is ``normal`` unless mapped.
JIRA_PRIORITIES: dict[str, ev.Priority] = {
    "highest": "urgent",
    "p1": "urgent",
    "p2": "high",
    "p3": "normal",
    "p4": "low",
    "p5": "low",
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
# Jira Service Management's default statuses by whose turn it is. "Waiting for support" is the
# agent's turn (timers run); "Waiting for customer" is the customer's (pending). A status not
# named here falls back on its category: To Do → new (so "Open", untouched yet, is new; the
# timers run), In Progress → open, Done → solved.
JSM_STATUSES: dict[str, ev.Status] = {
    "reopened": "open",
    "waiting for support": "open",
    "in progress": "open",
    "work in progress": "open",
    "escalated": "open",
    "under investigation": "open",
    "investigating": "open",
    "awaiting implementation": "open",
    "implementing": "open",
    "waiting for customer": "pending",
    "waiting for reporter": "pending",
    "pending": "pending",
    "awaiting approval": "on_hold",
    "waiting for approval": "on_hold",
    "waiting for third party": "on_hold",
    "waiting for vendor": "on_hold",
    "on hold": "on_hold",
    "blocked": "on_hold",
    "resolved": "solved",
    "done": "solved",
    "completed": "solved",
    "closed": "closed",
    "canceled": "closed",
    "cancelled": "closed",
    "declined": "closed",
}
# Who wrote a comment, from the author's ``accountType``: JSM portal customers are ``customer``,
# staff are ``atlassian``, automation and apps are ``app``.
CUSTOMER_ACCOUNT = "customer"
APP_ACCOUNT = "app"


class JiraNamed(Payload):
    name: str | None = None


class JiraStatusCategory(Payload):
    key: str | None = None


class JiraStatus(Payload):
    name: str
    statusCategory: JiraStatusCategory | None = None


class JiraUser(Payload):
    accountId: str | None = None
    name: str | None = None
    key_: str | None = Field(default=None, alias="key")
    emailAddress: str | None = None
    displayName: str | None = None
    accountType: str | None = None

    @property
    def key(self) -> str | None:
        return self.accountId or self.name or self.key_ or self.emailAddress


class JiraFields(Payload):
    # Custom fields are kept: request participants live in one.
    model_config = ConfigDict(extra="allow")

    summary: str | None = None
    description: str | dict[str, Any] | None = None
    status: JiraStatus | None = None
    priority: JiraNamed | None = None
    resolution: JiraNamed | None = None
    labels: list[str] | None = None
    assignee: JiraUser | None = None
    reporter: JiraUser | None = None
    updated: str | None = None


class JiraIssue(Payload):
    id: str | int | None = None
    key: str = Field(min_length=1, max_length=200)
    fields: JiraFields = Field(default_factory=JiraFields)


class JiraChangeItem(Payload):
    field: str
    fromString: str | None = None
    toString: str | None = None


class JiraChangelog(Payload):
    id: str | int | None = None
    items: list[JiraChangeItem] = Field(default_factory=list)


class JiraComment(Payload):
    id: str | int
    body: str | dict[str, Any] | None = None
    author: JiraUser | None = None
    jsdPublic: bool = True


class JiraPayload(Payload):
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


def jira_status(fields: JiraFields, mappings: Mappings = NO_MAPPINGS) -> ev.Status | None:
    if fields.status is None:
        return None
    name = fields.status.name.strip().lower()
    mapped = mappings.status.get(name)
    if mapped:
        return mapped  # type: ignore[return-value]  # checked when the admin stored it
    if name in JSM_STATUSES:
        return JSM_STATUSES[name]
    category = (fields.status.statusCategory.key if fields.status.statusCategory else None) or ""
    if category == "done" or (fields.resolution is not None and fields.resolution.name):
        return "solved"
    if category == "new":
        return "new"
    return "open"


def participants(fields: JiraFields) -> set[str]:
    """Request participants: JSM keeps them in a custom field holding a list of users."""
    found: set[str] = set()
    for name, value in (fields.model_extra or {}).items():
        if not name.startswith("customfield_") or not isinstance(value, list):
            continue
        for item in value:
            if isinstance(item, dict) and ("accountId" in item or "emailAddress" in item):
                key = JiraUser.model_validate(item).key
                if key:
                    found.add(key)
    return found


def comment_author(
    author: JiraUser | None, reporter: JiraUser | None, fields: JiraFields
) -> tuple[ev.Author, bool]:
    """Who wrote a comment, and whether it can count as a reply.

    The reporter, a request participant and any ``customer`` account are the customer. Staff
    (``atlassian``) are agents; an app's comment is recorded as an internal note (an automatic
    acknowledgement is no reply). An author who cannot be told apart (no account type, and no
    reporter in the payload to compare with) is the customer: counting them as an agent would
    mark a first response that never happened.
    """
    if author is None:
        return "customer", True
    kind = (author.accountType or "").lower()
    key = author.key
    if kind == CUSTOMER_ACCOUNT:
        return "customer", True
    if key is not None and reporter is not None and key == reporter.key:
        return "customer", True
    if key is not None and key in participants(fields):
        return "customer", True
    if kind == APP_ACCOUNT:
        return "agent", False
    if kind or reporter is not None:
        return "agent", True
    return "customer", True


def jira_timestamp(payload: JiraPayload) -> datetime:
    return datetime.fromtimestamp(payload.timestamp / 1000, tz=UTC)


def parse_jira(
    data: dict[str, Any], delivery_id: str | None = None, mappings: Mappings = NO_MAPPINGS
) -> Parsed:
    payload = JiraPayload.model_validate(data)
    fields = payload.issue.fields
    reporter = fields.reporter
    requester = None
    if reporter is not None and reporter.key:
        requester = ev.Requester(
            id=f"jira:{reporter.key}", email=reporter.emailAddress, name=reporter.displayName
        )
    raw_priority = raw_value(fields.priority.name) if fields.priority is not None else None
    priority = map_value(mappings.priority, JIRA_PRIORITIES, raw_priority, DEFAULT_PRIORITY)
    inbound = ev.InboundTicket(
        subject=fields.summary,
        description=_adf_text(fields.description),
        status=jira_status(fields, mappings),
        priority=priority,
        channel="web",
        requester=requester,
        tags=tag_list(fields.labels),
        assignee_id=fields.assignee.key if fields.assignee else None,
        source_status=raw_value(fields.status.name) if fields.status else None,
        source_priority=raw_priority,
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
        kind, counts = comment_author(author, reporter, fields)
        events.append(
            ev.TicketMessageReceived(
                message=ev.InboundMessage(
                    id=ident(payload.comment.id),
                    author=kind,
                    author_id=author.key if author else None,
                    public=payload.comment.jsdPublic and counts,
                    body=_adf_text(payload.comment.body) or "",
                ),
                ticket=inbound,
                **common,
            )
        )
    else:
        events.append(ev.TicketUpsert(ticket=inbound, **common))
    return Parsed(events=events, delivery_id=delivery_id)
