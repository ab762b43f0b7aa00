"""Routing: the rules, then the choice of an agent with room, and the queue of waiting tickets.

Functions take router's unit of work and never commit.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

from services.router import repository, rules
from services.router.assignment import (
    AgentView,
    TicketNeeds,
    choose_agent,
    eligible,
    load_order,
)
from services.router.context import RouterContext, record, snapshot, ticket_document
from services.router.models import Agent, RoutingRule, Ticket
from shared import events as ev
from shared.conditions import Conditions
from shared.db import read_once
from shared.errors import NotFound, Unprocessable
from shared.runtime import ServiceRuntime, batch_events

# --- placing tickets ------------------------------------------------------------------------------

# A returning customer's previous agent counts when their ticket is open or solved this recently.
RETURNING_CUSTOMER_WINDOW = timedelta(days=7)


def rule_from_row(row: RoutingRule) -> rules.Rule:
    return rules.Rule(
        id=row.id,
        name=row.name,
        position=row.position,
        enabled=row.enabled,
        conditions=Conditions.model_validate(row.conditions),
        actions=rules.RuleActions.model_validate(row.actions),
    )


async def _enabled_rules(ctx: RouterContext) -> list[rules.Rule]:
    """The enabled rules, read and parsed once per transaction (a consumer batch routes many
    tickets with them); changing a rule forgets them."""

    async def load() -> list[rules.Rule]:
        return [
            rule_from_row(row) for row in await repository.list_rules(ctx.session) if row.enabled
        ]

    return await read_once(ctx.session, _RULES, load)


async def apply_rules(ctx: RouterContext, ticket: Ticket) -> None:
    """Run the routing rules on a ticket; record each matching rule's changes and emit them.

    Changes the ticket in memory only: the caller's flush (or the next query's) writes them."""
    enabled = await _enabled_rules(ctx)
    if not enabled:
        return
    outcome = rules.evaluate(enabled, ticket_document(ticket))
    for applied in outcome.applied:
        await record(
            ctx, ticket, "rule", applied.changes, f"rule:{applied.rule_name} ({applied.rule_id})"
        )
    if list(ticket.required_skills or []) != outcome.required_skills:
        ticket.required_skills = outcome.required_skills
    before = snapshot(ticket)
    diff: dict[str, list[Any]] = {}
    for name, value in (
        ("priority", outcome.priority),
        ("group", outcome.group),
        ("tags", outcome.tags),
    ):
        if getattr(ticket, name) != value:
            diff[name] = [getattr(ticket, name), value]
            setattr(ticket, name, value)
    if not diff:
        return
    ticket.updated_at = ctx.clock.now()
    ticket.version += 1
    after = snapshot(ticket)
    await ctx.emit(ev.TicketUpdated(ticket=after, changes=diff))
    if "priority" in diff:
        by = [a for a in outcome.applied if "priority" in a.changes][-1]
        await ctx.emit(
            ev.TicketPrioritized(
                ticket=after, previous_priority=before.priority, reason=f"rule:{by.rule_name}"
            )
        )


# ``session.info`` keys: this transaction's roster and enabled rules.
_ROSTER = "router_roster"
_RULES = "router_rules"
_PREVIOUS_AGENTS = "router_previous_agents"


@dataclass
class Roster:
    """One transaction's view of the online agents and their loads, read once and kept current
    as it assigns, so a consumer batch of a hundred tickets reads the agents' load once.

    ``views`` guide the choice only; an agent is assigned to after its row is locked and its
    load counted again (``counted``: locked by this transaction, so nobody else assigns to them
    until it commits and the kept count stays exact)."""

    views: dict[str, AgentView]
    counted: set[str] = field(default_factory=set)
    # Agents found locked by another transaction: not tried again in this one (each try is a
    # round trip); they are still waited for when no agent can be had otherwise.
    busy: set[str] = field(default_factory=set)


async def roster(ctx: RouterContext) -> Roster:
    """This transaction's roster, read on first use."""

    async def load() -> Roster:
        agents = await repository.online_agent_views(ctx.session)
        loads = await repository.agent_loads(ctx.session, [a.id for a in agents])
        return Roster({a.id: replace(a, load=loads.get(a.id, {})) for a in agents})

    return await read_once(ctx.session, _ROSTER, load)


def forget_roster(ctx: RouterContext) -> None:
    """Loads or agents changed other than by ``route``: read them again on next use."""
    ctx.session.info.pop(_ROSTER, None)


def forget_rules(ctx: RouterContext) -> None:
    ctx.session.info.pop(_RULES, None)


async def previous_agents(ctx: RouterContext, ticket: Ticket) -> list[str]:
    """The agents of the requester's other open or recently solved tickets, most recent first
    (a returning customer goes back to them).

    In a consumer batch, one statement reads them for every requester the batch's
    ``ticket.upsert`` events name, as they were when the batch began. That answer stands for a
    ticket as long as this transaction has changed none of the requester's other tickets
    (``RouterContext.changed_tickets``); otherwise, or for a requester the batch did not name,
    they are read for this ticket alone.
    """
    solved_since = ctx.clock.now() - RETURNING_CUSTOMER_WINDOW
    requester = ticket.requester_id
    if batch_events(ctx.session) and not ctx.changed_tickets(requester) - {ticket.id}:

        async def load() -> dict[str, list[tuple[str, str]]]:
            return await repository.previous_agents_by_requester(
                ctx.session, _requesters_named(batch_events(ctx.session)), solved_since
            )

        rows = (await read_once(ctx.session, _PREVIOUS_AGENTS, load)).get(requester)
        if rows is not None:
            others = [agent for ticket_id, agent in rows if ticket_id != ticket.id]
            return repository.distinct_agents(others[: repository.PREVIOUS_AGENTS_SCAN])
    return await repository.previous_agents(ctx.session, ticket, solved_since)


def _requesters_named(events: tuple[ev.Event, ...]) -> set[str]:
    """The requesters of a batch's ``ticket.upsert`` events (a new ticket without one gets
    ``<source>:unknown``, as ``apply_inbound_upsert`` names it)."""
    return {
        event.ticket.requester.id if event.ticket.requester else f"{event.source}:unknown"
        for event in events
        if isinstance(event, ev.TicketUpsert)
    }


async def route(ctx: RouterContext, ticket: Ticket) -> bool:
    """Assign an unassigned active ticket to the best agent with room; False if it must wait."""
    if not _routable(ticket):
        return False
    return await _place(ctx, ticket, await roster(ctx))


def _routable(ticket: Ticket) -> bool:
    return (
        ticket.assignee_id is None
        and ticket.status in repository.ACTIVE_STATUSES
        and not ticket.manual_assignment
    )


async def _place(ctx: RouterContext, ticket: Ticket, current: Roster) -> bool:
    """Choose, lock, re-check and assign; the roster is kept current for the next ticket."""
    needs = TicketNeeds(
        channel=ticket.channel,
        group=ticket.group,
        required_skills=frozenset(ticket.required_skills or []),
    )
    previous = await previous_agents(ctx, ticket)
    candidates = {k: v for k, v in current.views.items() if k not in current.busy}
    busy = {k: current.views[k] for k in current.busy if k in current.views}
    while candidates:
        choice = choose_agent(needs, list(candidates.values()), previous)
        if choice is None:
            break
        if choice.agent_id in current.counted:
            # Locked and counted by this transaction already: the kept view is exact.
            if _has_room(current.views[choice.agent_id], ticket.channel):
                await _assign(ctx, ticket, choice.agent_id, choice.strategy, current)
                return True
            candidates.pop(choice.agent_id)
            continue
        # Lock the agent and count again: another router may have filled them meanwhile. Several
        # transactions assigning at once would all queue on the same least-loaded agent, so a
        # locked agent is skipped for the next best one; a returning customer's agent is worth
        # waiting for. A transaction already holding an agent lock never waits (no deadlock).
        if choice.strategy != "returning_customer" or ctx.holds_agent_lock:
            await _lock_and_count(ctx, needs, choice.agent_id, candidates, busy, current)
            continue  # choose again, among exact loads
        agent = await repository.get_agent(ctx.session, choice.agent_id, for_update=True)
        if agent is not None and await _assign_if_room(
            ctx, ticket, agent, choice.strategy, current
        ):
            return True
        candidates.pop(choice.agent_id, None)
    # Every fitting agent is busy in another transaction: wait for the best of them.
    while busy and not ctx.holds_agent_lock:
        choice = choose_agent(needs, list(busy.values()), previous)
        if choice is None:
            return False
        busy.pop(choice.agent_id)
        current.busy.discard(choice.agent_id)
        agent = await repository.get_agent(ctx.session, choice.agent_id, for_update=True)
        if agent is not None and await _assign_if_room(
            ctx, ticket, agent, choice.strategy, current
        ):
            return True
    return False


async def _lock_and_count(
    ctx: RouterContext,
    needs: TicketNeeds,
    chosen: str,
    candidates: dict[str, AgentView],
    busy: dict[str, AgentView],
    current: Roster,
) -> None:
    """Lock the chosen agent and the next best candidates the ticket could go to that this
    transaction has not counted yet, in one statement, skipping those another transaction
    holds (they move to ``busy``); then count the locked ones' loads in one more. A batch's
    tickets spread over agents by load, so locking them one by one cost two round trips per
    agent and batch. No more agents are locked than the batch has events (at least one), so
    other routers' batches still find free agents where the team is larger than a batch."""
    others = sorted(
        (
            view
            for view in candidates.values()
            if view.id != chosen and view.id not in current.counted and eligible(view, needs)
        ),
        key=lambda view: load_order(view, needs.channel),
    )
    room = max(1, len(batch_events(ctx.session))) - 1
    wanted = [chosen] + [view.id for view in others[:room]]
    locked = await repository.lock_free_agents(ctx.session, wanted)
    if locked:
        ctx.holds_agent_lock = True
        loads = await repository.agent_loads(ctx.session, [agent.id for agent in locked])
        for agent in locked:
            current.views[agent.id] = candidates[agent.id] = _view(agent, loads.get(agent.id, {}))
            current.counted.add(agent.id)
    for agent_id in set(wanted) - {agent.id for agent in locked}:
        busy[agent_id] = candidates.pop(agent_id)
        current.busy.add(agent_id)


def _has_room(view: AgentView, channel: str) -> bool:
    return view.status == "online" and view.has_room(channel)


async def _assign_if_room(
    ctx: RouterContext, ticket: Ticket, agent: Agent, strategy: str, current: Roster
) -> bool:
    """With the agent's row locked: count their load and assign if they are online with room."""
    ctx.holds_agent_lock = True
    load = (await repository.agent_loads(ctx.session, [agent.id])).get(agent.id, {})
    current.views[agent.id] = _view(agent, load)
    current.counted.add(agent.id)
    if not _has_room(current.views[agent.id], ticket.channel):
        return False
    await _assign(ctx, ticket, agent.id, strategy, current)
    return True


async def _assign(
    ctx: RouterContext, ticket: Ticket, agent_id: str, strategy: str, current: Roster
) -> None:
    now = ctx.clock.now()
    previous = ticket.assignee_id
    ticket.assignee_id = agent_id
    ticket.manual_assignment = False
    ticket.updated_at = now
    ticket.version += 1
    await repository.mark_assigned(ctx.session, agent_id, now)
    view = current.views[agent_id]
    load = {**view.load, ticket.channel: view.load.get(ticket.channel, 0) + 1}
    current.views[agent_id] = replace(view, load=load, last_assigned_at=now)
    await record(ctx, ticket, "assignment", {"assignee_id": [previous, agent_id]}, strategy)
    await ctx.emit(
        ev.TicketAssigned(ticket=snapshot(ticket), previous_assignee_id=previous, reason=strategy)
    )


async def drain_queue(ctx: RouterContext, limit: int = 200) -> int:
    """Assign waiting tickets, most urgent then oldest first, while agents have room."""
    waiting = await repository.waiting_tickets(ctx.session, limit)
    if not waiting:
        return 0
    current = await roster(ctx)
    assigned = 0
    for ticket in waiting:
        if not any(view.has_room(ticket.channel) for view in current.views.values()):
            continue
        # Another router holding this ticket is routing it already: skip rather than wait.
        locked = await repository.get_ticket(
            ctx.session, ticket.id, for_update=True, skip_locked=True
        )
        if locked is None or not _routable(locked):
            continue
        if await _place(ctx, locked, current):
            assigned += 1
    return assigned


# A safety net: a router that skipped a locked ticket or agent (another router had it) may leave
# room unused until the next change; this sweep assigns such tickets within seconds.
QUEUE_SWEEP_SECONDS = 5.0


async def sweep_queue(runtime: ServiceRuntime) -> None:
    """Background loop: drain the queue every few seconds."""
    while True:
        await runtime.clock.sleep(QUEUE_SWEEP_SECONDS)
        async with runtime.transaction() as session:
            await drain_queue(RouterContext.for_session(session, runtime))


# How often the agents' load changes are folded into their totals (wall clock: a chore).
LOAD_FOLD_SECONDS = 1.0


async def fold_loads(runtime: ServiceRuntime) -> None:
    """Background loop: fold the agents' load changes into their totals
    (``repository.fold_agent_loads``), so a load read stays a few rows."""
    while True:
        await asyncio.sleep(LOAD_FOLD_SECONDS)
        async with runtime.transaction() as session:
            await repository.fold_agent_loads(session)


def _view(agent: Agent, load: dict[str, int]) -> AgentView:
    return AgentView(
        id=agent.id,
        status=agent.status,
        groups=frozenset(agent.groups or []),
        skills=frozenset(agent.skills or []),
        capacity=dict(agent.capacity or {}),
        load=load,
        last_assigned_at=agent.last_assigned_at,
    )


# --- routing rules ----------------------------------------------------------------------------


async def _check_rule(ctx: RouterContext, data: rules.RoutingRuleIn) -> None:
    groups, skills = await repository.known_groups_and_skills(ctx.session)
    details = rules.problems(
        data.conditions, data.actions, known_groups=groups, known_skills=skills
    )
    if details:
        raise Unprocessable(f"{details[0]['field']}: {details[0]['message']}", details=details)


def _store_rule(row: RoutingRule, data: rules.RoutingRuleIn) -> None:
    row.name = data.name
    row.position = data.position
    row.enabled = data.enabled
    row.conditions = data.conditions.model_dump(mode="json")
    row.actions = data.actions.model_dump(mode="json", exclude_none=True)


async def create_rule(ctx: RouterContext, data: rules.RoutingRuleIn) -> RoutingRule:
    await _check_rule(ctx, data)
    now = ctx.clock.now()
    row = RoutingRule(id=uuid.uuid4().hex, created_at=now, updated_at=now)
    _store_rule(row, data)
    ctx.session.add(row)
    await ctx.session.flush()
    forget_rules(ctx)
    return row


async def replace_rule(ctx: RouterContext, rule_id: str, data: rules.RoutingRuleIn) -> RoutingRule:
    row = await repository.get_rule(ctx.session, rule_id)
    if row is None:
        raise NotFound(f"routing rule {rule_id} not found")
    await _check_rule(ctx, data)
    _store_rule(row, data)
    row.updated_at = ctx.clock.now()
    await ctx.session.flush()
    forget_rules(ctx)
    return row


async def delete_rule(ctx: RouterContext, rule_id: str) -> None:
    row = await repository.get_rule(ctx.session, rule_id)
    if row is None:
        raise NotFound(f"routing rule {rule_id} not found")
    await ctx.session.delete(row)
    await ctx.session.flush()
    forget_rules(ctx)
