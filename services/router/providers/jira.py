"""Jira Cloud and Jira Service Management: ``jira:issue_*`` and ``comment_created`` webhooks."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import Field

from services.router.providers.base import MappingError, Parsed, Payload, ident, lookup, tag_list
from shared import events as ev

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
    emailAddress: str | None = None
    displayName: str | None = None

    @property
    def key(self) -> str | None:
        return self.accountId or self.name or self.emailAddress


class JiraFields(Payload):
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
        priority = lookup(
            JIRA_PRIORITIES, fields.priority.name, "issue.fields.priority.name", "priority"
        )
    inbound = ev.InboundTicket(
        subject=fields.summary,
        description=_adf_text(fields.description),
        status=jira_status(fields),
        priority=priority,
        channel="web",
        requester=requester,
        tags=tag_list(fields.labels),
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
                    id=ident(payload.comment.id),
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
