"""router's business rules: the canonical ticket's life cycle, agents and vendor mappings.

Functions take the session and the outbox and never commit: the caller's unit of work does.
Routing (rules, agent choice, the queue) is in ``routing``; the unit of work in ``context``.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from services.router import repository, rules
from services.router.context import (
    CLOSED_STATUSES,
    RouterContext,
    record,
    save_decisions,
    snapshot,
    ticket_document,
)
from services.router.models import Agent, ProviderMapping, Ticket, TicketMessage
from services.router.routing import apply_rules, drain_queue, forget_roster, route
from services.router.schemas import (
    AgentPatch,
    AgentPut,
    MessageCreate,
    ProviderMappings,
    TicketCreate,
    TicketUpdate,
)
from shared import events as ev
from shared.db import read_once
from shared.errors import Conflict, NotFound, Unprocessable
from shared.runtime import batch_events, batch_subjects

__all__ = ["CLOSED_STATUSES", "RouterContext", "snapshot", "ticket_document"]


# --- creating and changing tickets ------------------------------------------------------------


async def create_ticket(ctx: RouterContext, data: TicketCreate, source: str = "api") -> Ticket:
    external_id = data.external_id or uuid.uuid4().hex
    ticket_id = f"{source}:{external_id}"
    if await repository.get_ticket(ctx.session, ticket_id) is not None:
        raise Conflict(f"ticket {ticket_id} already exists", details=[{"field": "external_id"}])
    return await _open_ticket(
        ctx,
        id=ticket_id,
        source=source,
        external_id=external_id,
        subject=data.subject,
        description=data.description,
        status="new",
        priority=data.priority or "normal",
        channel=data.channel,
        requester=ev.Requester(
            id=data.requester.key,
            email=data.requester.email,
            name=data.requester.name,
            tier=data.requester.tier,
        ),
        tags=list(data.tags),
        group=data.group,
        custom_fields=dict(data.custom_fields),
    )


async def _open_ticket(
    ctx: RouterContext,
    *,
    id: str,
    source: str,
    external_id: str,
    subject: str,
    description: str | None,
    status: str,
    priority: str,
    channel: str,
    requester: ev.Requester,
    tags: list[str],
    group: str | None,
    custom_fields: dict[str, Any],
    assignee_id: str | None = None,
    source_updated_at: datetime | None = None,
    source_status: str | None = None,
    source_priority: str | None = None,
) -> Ticket:
    """The one place a ticket is built: store it, announce it, run the rules and route it."""
    now = ctx.clock.now()
    ticket = Ticket(
        id=id,
        source=source,
        external_id=external_id,
        subject=subject,
        description=description,
        status=status,
        priority=priority,
        channel=channel,
        requester_id=requester.id,
        requester_email=requester.email,
        requester_name=requester.name,
        requester_tier=requester.tier,
        tags=tags,
        group=group,
        assignee_id=assignee_id,
        manual_assignment=assignee_id is not None,
        custom_fields=custom_fields,
        created_at=now,
        updated_at=now,
        solved_at=now if status in CLOSED_STATUSES else None,
        source_updated_at=source_updated_at,
        source_status=source_status,
        source_priority=source_priority,
        version=1,
    )
    ctx.session.info.get(_ABSENT, set()).discard(id)
    if assignee_id is not None:
        forget_roster(ctx)  # a source's assignment adds to that agent's load
    # Rules and routing change the new ticket in memory before it joins the session, so their
    # queries cannot write it early: one INSERT of the routed ticket, not an INSERT and an
    # UPDATE. (Their queries still flush what the transaction added before.)
    await ctx.emit(ev.TicketCreated(ticket=snapshot(ticket)))
    await apply_rules(ctx, ticket)
    await route(ctx, ticket)
    ctx.session.add(ticket)
    if not batch_events(ctx.session):
        await ctx.session.flush()
    # In a consumer batch the new tickets are written together, by the batch's last flush
    # (``RouterContext.batch_keeps_session``), before the decisions queued for its end.
    save_decisions(ctx)
    return ticket


# ``read_once`` key: the tickets of this consumer batch that have no row (yet).
_ABSENT = "router_absent_tickets"


async def _ticket_to_apply(ctx: RouterContext, ticket_id: str) -> Ticket | None:
    """The ticket, locked for the change, or None when it has no row yet.

    In a consumer batch, one read finds which of the batch's tickets have no row: a new
    ticket's first event (the common case at intake) skips the locking read, which would find
    nothing to lock. Creating the ticket takes it off that set. Should another transaction
    create the same ticket meanwhile, the insert fails on its key, exactly as after a locking
    read that found nothing, and the batch is handled again one event at a time.
    """
    if batch_events(ctx.session):

        async def load() -> set[str]:
            subjects = batch_subjects(ctx.session)
            return set(subjects) - await repository.existing_ticket_ids(ctx.session, subjects)

        if ticket_id in await read_once(ctx.session, _ABSENT, load):
            return None
    return await repository.get_ticket(ctx.session, ticket_id, for_update=True)


async def apply_inbound_upsert(ctx: RouterContext, event: ev.TicketUpsert) -> Ticket | None:
    """Create or update the canonical ticket from a source's report; stale reports are ignored."""
    ticket_id = event.subject
    ticket = await _ticket_to_apply(ctx, ticket_id)
    data = event.ticket
    if ticket is None:
        return await _open_ticket(
            ctx,
            id=ticket_id,
            source=event.source,
            external_id=event.external_id,
            subject=data.subject or "(no subject)",
            description=data.description,
            status=data.status or "new",
            priority=data.priority or "normal",
            channel=data.channel or "other",
            requester=data.requester or ev.Requester(id=f"{event.source}:unknown"),
            tags=list(data.tags or []),
            group=data.group,
            assignee_id=data.assignee_id,
            custom_fields=dict(data.custom_fields or {}),
            source_updated_at=event.occurred_at,
            source_status=data.source_status,
            source_priority=data.source_priority,
        )
    if ticket.source_updated_at is not None and event.occurred_at < ticket.source_updated_at:
        return None  # an older report never overwrites a newer state
    ticket.source_updated_at = event.occurred_at
    changes: dict[str, Any] = {}
    for name in (
        "subject",
        "description",
        "status",
        "priority",
        "channel",
        "tags",
        "group",
        "assignee_id",
        "custom_fields",
    ):
        value = getattr(data, name)
        if value is not None and value != getattr(ticket, name):
            changes[name] = value
    if data.requester is not None and data.requester.tier != ticket.requester_tier:
        ticket.requester_tier = data.requester.tier
        changes.setdefault("requester_tier", data.requester.tier)
    # The vendor's raw values are bookkeeping, not a change of the canonical ticket: no event.
    if data.source_status is not None:
        ticket.source_status = data.source_status
    if data.source_priority is not None:
        ticket.source_priority = data.source_priority
    await apply_changes(ctx, ticket, changes, reason=f"source:{event.source}", manual=True)
    if changes.keys() & rules.RULE_INPUTS:
        await apply_rules(ctx, ticket)
        await route(ctx, ticket)
    return ticket


async def update_ticket(ctx: RouterContext, ticket_id: str, data: TicketUpdate) -> Ticket:
    ticket = await _ticket_for_update(ctx, ticket_id)
    changes = {name: getattr(data, name) for name in data.model_fields_set}
    if changes.get("assignee_id") is not None and changes["assignee_id"] == ticket.assignee_id:
        # Confirming the router's pick by hand pins it: the router will not move it later.
        ticket.manual_assignment = True
    await apply_changes(ctx, ticket, changes, reason="manual", manual=True)
    return ticket


async def _ticket_for_update(ctx: RouterContext, ticket_id: str) -> Ticket:
    ticket = await repository.get_ticket(ctx.session, ticket_id, for_update=True)
    if ticket is None:
        raise NotFound(f"ticket {ticket_id} not found")
    return ticket


async def apply_changes(
    ctx: RouterContext, ticket: Ticket, changes: dict[str, Any], *, reason: str, manual: bool
) -> None:
    """Apply field changes and emit the events they mean; a no-op change emits nothing."""
    before = snapshot(ticket)
    diff: dict[str, list[Any]] = {}
    for name, value in changes.items():
        if name == "requester_tier":
            diff[name] = [None, value]
            continue
        old = getattr(ticket, name)
        if old != value:
            diff[name] = [old, value]
            setattr(ticket, name, value)
    if not diff:
        return
    now = ctx.clock.now()
    if "assignee_id" in diff and manual:
        ticket.manual_assignment = ticket.assignee_id is not None
        await record(ctx, ticket, "assignment", {"assignee_id": diff["assignee_id"]}, reason)
    if "status" in diff:
        if ticket.status in CLOSED_STATUSES and before.status not in CLOSED_STATUSES:
            ticket.solved_at = now
        elif ticket.status not in CLOSED_STATUSES:
            ticket.solved_at = None
    ticket.updated_at = now
    ticket.version += 1
    await ctx.session.flush()
    if diff.keys() & {"status", "assignee_id", "channel"}:
        forget_roster(ctx)  # agents' loads changed outside routing
    after = snapshot(ticket)
    await ctx.emit(ev.TicketUpdated(ticket=after, changes=diff))
    if "priority" in diff:
        await ctx.emit(
            ev.TicketPrioritized(ticket=after, previous_priority=before.priority, reason=reason)
        )
    if "assignee_id" in diff:
        if ticket.assignee_id is None:
            await ctx.emit(
                ev.TicketUnassigned(
                    ticket=after, previous_assignee_id=before.assignee_id, reason=reason
                )
            )
        else:
            await ctx.emit(
                ev.TicketAssigned(
                    ticket=after, previous_assignee_id=before.assignee_id, reason=reason
                )
            )
    if "status" in diff:
        await ctx.emit(ev.TicketStatusChanged(ticket=after, previous_status=before.status))
        if ticket.status == "solved":
            await ctx.emit(ev.TicketSolved(ticket=after))
        elif ticket.status == "closed":
            await ctx.emit(ev.TicketClosed(ticket=after))
        if before.status in CLOSED_STATUSES and ticket.status not in CLOSED_STATUSES:
            await ctx.emit(ev.TicketReopened(ticket=after, previous_status=before.status))
    frees_capacity = "status" in diff or ("assignee_id" in diff and before.assignee_id is not None)
    if (
        ticket.assignee_id is None
        and ticket.status not in CLOSED_STATUSES
        and not ticket.manual_assignment
    ):
        await route(ctx, ticket)
    if frees_capacity:
        await drain_queue(ctx)


async def add_message(
    ctx: RouterContext, ticket_id: str, data: MessageCreate, message_id: str | None = None
) -> TicketMessage:
    ticket = await _ticket_for_update(ctx, ticket_id)
    if ticket.status == "closed":
        raise Conflict(f"ticket {ticket_id} is closed; open a follow-up ticket instead")
    message_id = message_id or f"{ticket.id}#{uuid.uuid4().hex}"
    existing = await repository.get_message(ctx.session, message_id)
    if existing is not None:
        return existing
    now = ctx.clock.now()
    message = TicketMessage(
        id=message_id,
        ticket_id=ticket.id,
        author=data.author,
        author_id=data.author_id,
        public=data.public,
        body=data.body,
        created_at=now,
    )
    ctx.session.add(message)
    ticket.updated_at = now
    ticket.version += 1
    await ctx.session.flush()
    await ctx.emit(
        ev.TicketMessageAdded(
            ticket=snapshot(ticket),
            message=ev.MessageInfo(
                id=message.id,
                author=data.author,
                author_id=data.author_id,
                public=data.public,
                created_at=now,
            ),
        )
    )
    # Status follows the conversation as in every mature helpdesk: an agent's first public
    # reply opens a new ticket; a customer's reply brings a pending or solved ticket back.
    if data.author == "agent" and data.public and ticket.status == "new":
        await apply_changes(ctx, ticket, {"status": "open"}, reason="agent_reply", manual=False)
    elif data.author == "customer" and ticket.status in ("pending", "solved"):
        await apply_changes(ctx, ticket, {"status": "open"}, reason="customer_reply", manual=False)
    return message


async def apply_inbound_message(ctx: RouterContext, event: ev.TicketMessageReceived) -> None:
    ticket = await repository.get_ticket(ctx.session, event.subject)
    if ticket is None:
        upsert = ev.TicketUpsert(
            source=event.source,
            external_id=event.external_id,
            occurred_at=event.occurred_at,
            ticket=event.ticket or ev.InboundTicket(),
        )
        await apply_inbound_upsert(ctx, upsert)
    message = event.message
    message_id = f"{event.subject}#{message.id}" if message.id else None
    await add_message(
        ctx,
        event.subject,
        MessageCreate(
            author=message.author,
            author_id=message.author_id,
            public=message.public,
            body=message.body or "(empty)",
        ),
        message_id=message_id,
    )


# --- agents leaving, SLA escalations --------------------------------------------------------------


async def hand_back(ctx: RouterContext, agent: Agent) -> int:
    """An agent left (away/offline): their not-yet-answered tickets go back to the queue."""
    reason = f"agent_{agent.status}"
    handed = 0
    for ticket in await repository.unanswered_tickets(ctx.session, agent.id):
        locked = await repository.get_ticket(
            ctx.session, ticket.id, for_update=True, skip_locked=True
        )
        if locked is None or locked.assignee_id != agent.id or locked.manual_assignment:
            continue
        await record(ctx, locked, "unassignment", {"assignee_id": [agent.id, None]}, reason)
        # Unassigning re-routes the ticket and drains the queue (apply_changes does both).
        await apply_changes(ctx, locked, {"assignee_id": None}, reason=reason, manual=False)
        handed += 1
    return handed


async def apply_escalation(ctx: RouterContext, event: ev.SlaEscalated) -> None:
    """SLA escalation actions ``set_group`` / ``set_priority``, then re-routing.

    A router-made assignment to an agent outside the new group is handed back to the queue;
    a manual assignment always stays.
    """
    ticket = await repository.get_ticket(ctx.session, event.ticket_id, for_update=True)
    if ticket is None or ticket.status == "closed":
        return
    changes: dict[str, Any] = {}
    priority = event.actions.get("set_priority")
    if priority in repository.PRIORITY_RANK and priority != ticket.priority:
        changes["priority"] = priority
    group = event.actions.get("set_group")
    if isinstance(group, str) and 0 < len(group) <= 100 and group != ticket.group:
        changes["group"] = group
    if not changes:
        return
    reason = f"sla_escalation:{event.metric}:{event.when}:level{event.level}"
    if "group" in changes and ticket.assignee_id is not None and not ticket.manual_assignment:
        agent = await repository.get_agent(ctx.session, ticket.assignee_id)
        if agent is None or changes["group"] not in (agent.groups or []):
            changes["assignee_id"] = None
    await record(
        ctx,
        ticket,
        "escalation",
        {name: [getattr(ticket, name), value] for name, value in changes.items()},
        reason,
    )
    await apply_changes(ctx, ticket, changes, reason=reason, manual=False)
    if "priority" in changes and "assignee_id" not in changes:
        await drain_queue(ctx)  # a more urgent waiting ticket may now go first


# --- agents -----------------------------------------------------------------------------------


async def put_agent(ctx: RouterContext, agent_id: str, data: AgentPut) -> tuple[Agent, bool]:
    if not agent_id or len(agent_id) > 100:
        raise Unprocessable("agent id must be 1-100 characters", details=[{"field": "id"}])
    agent = await repository.get_agent(ctx.session, agent_id, for_update=True)
    ctx.holds_agent_lock = True
    now = ctx.clock.now()
    created = agent is None
    was = None if agent is None else agent.status
    if agent is None:
        agent = Agent(id=agent_id, created_at=now, updated_at=now)
        ctx.session.add(agent)
    for name, value in data.model_dump().items():
        setattr(agent, name, value)
    agent.updated_at = now
    await ctx.session.flush()
    forget_roster(ctx)
    if was == "online" and agent.status != "online":
        await hand_back(ctx, agent)
    await drain_queue(ctx)
    return agent, created


async def patch_agent(ctx: RouterContext, agent_id: str, data: AgentPatch) -> Agent:
    agent = await repository.get_agent(ctx.session, agent_id, for_update=True)
    if agent is None:
        raise NotFound(f"agent {agent_id} not found")
    ctx.holds_agent_lock = True
    was = agent.status
    for name in data.model_fields_set:
        value = getattr(data, name)
        if value is None and name != "email":
            raise Unprocessable(f"{name} cannot be null", details=[{"field": name}])
        setattr(agent, name, value)
    agent.updated_at = ctx.clock.now()
    await ctx.session.flush()
    forget_roster(ctx)
    if was == "online" and agent.status != "online":
        await hand_back(ctx, agent)
    await drain_queue(ctx)
    return agent


# --- provider mappings ------------------------------------------------------------------------


async def put_provider_mappings(
    ctx: RouterContext, provider: str, data: ProviderMappings
) -> ProviderMapping:
    """Replace a vendor's status and priority maps; they apply to deliveries from now on."""
    now = ctx.clock.now()
    await repository.ensure_provider_mapping(ctx.session, provider, now)
    row = await repository.get_provider_mapping(ctx.session, provider, for_update=True)
    assert row is not None
    row.status = dict(data.status)
    row.priority = dict(data.priority)
    row.updated_at = now
    await ctx.session.flush()
    return row
