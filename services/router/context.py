"""router's unit of work and the ticket as events and rules see it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from sqlalchemy import inspect

from services.router import repository
from services.router.models import RoutingDecision, Ticket
from shared import events as ev
from shared.runtime import UnitOfWork

CLOSED_STATUSES = ("solved", "closed")


@dataclass
class RouterContext(UnitOfWork):
    """router's unit of work."""

    # Every ticket a handler changes is read locked, with ``populate_existing``: a consumer
    # batch may keep its session, and writes its new tickets in one statement.
    batch_keeps_session: ClassVar[bool] = True

    @property
    def holds_agent_lock(self) -> bool:
        """Whether this transaction locked an agent row: from then on it never waits for another.
        Kept on the session, as one transaction may serve several events (a consumer batch)."""
        return bool(self.session.info.get("holds_agent_lock"))

    @holds_agent_lock.setter
    def holds_agent_lock(self, value: bool) -> None:
        self.session.info["holds_agent_lock"] = value

    async def emit(self, event: ev.Event) -> str:
        if isinstance(event, ev.TicketEvent):
            # Every change of a ticket is announced: remember it per requester.
            changed = self.session.info.setdefault(_CHANGED_TICKETS, {})
            changed.setdefault(event.ticket.requester.id, set()).add(event.ticket.id)
        return await super().emit(event)

    def changed_tickets(self, requester_id: str) -> set[str]:
        """The requester's tickets this transaction changed (announced a change of) so far."""
        changed: dict[str, set[str]] = self.session.info.get(_CHANGED_TICKETS, {})
        return changed.get(requester_id, set())


# ``session.info`` key: the tickets a transaction changed, by requester (``changed_tickets``).
_CHANGED_TICKETS = "router_changed_tickets"


def snapshot(ticket: Ticket) -> ev.TicketSnapshot:
    return ev.TicketSnapshot(
        id=ticket.id,
        source=ticket.source,
        external_id=ticket.external_id,
        subject=ticket.subject,
        status=ticket.status,
        priority=ticket.priority,
        channel=ticket.channel,
        requester=ev.Requester(
            id=ticket.requester_id,
            email=ticket.requester_email,
            name=ticket.requester_name,
            tier=ticket.requester_tier,
        ),
        tags=list(ticket.tags or []),
        group=ticket.group,
        assignee_id=ticket.assignee_id,
        custom_fields=dict(ticket.custom_fields or {}),
        created_at=ticket.created_at,
        updated_at=ticket.updated_at,
        solved_at=ticket.solved_at,
        version=ticket.version,
    )


def ticket_document(ticket: Ticket) -> dict[str, Any]:
    """The ticket as the condition language sees it."""
    doc = snapshot(ticket).model_dump(mode="json")
    doc["description"] = ticket.description
    return doc


# ``session.info`` key of decisions about a ticket not yet written (``record``).
_UNSAVED_DECISIONS = "router_unsaved_decisions"


async def record(
    ctx: RouterContext, ticket: Ticket, kind: str, changes: dict[str, Any], reason: str
) -> None:
    """Add a routing decision; one about a ticket not yet written waits for ``save_decisions``
    (the new ticket's row must exist first)."""
    decision = RoutingDecision(
        ticket_id=ticket.id, at=ctx.clock.now(), kind=kind, changes=changes, reason=reason
    )
    if inspect(ticket).persistent:
        repository.add_decision(ctx.session, decision)
    else:
        ctx.session.info.setdefault(_UNSAVED_DECISIONS, []).append(decision)


def save_decisions(ctx: RouterContext) -> None:
    """Once the new ticket is written: add the decisions ``record`` kept back."""
    for decision in ctx.session.info.pop(_UNSAVED_DECISIONS, []):
        repository.add_decision(ctx.session, decision)
