"""router's HTTP API: tickets, messages and agents."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Query, Response
from fastapi.responses import JSONResponse

from services.router import intake, repository, routing, service
from services.router.models import Agent, RoutingRule, Ticket, TicketMessage
from services.router.rules import RoutingRuleIn, RoutingRuleRead
from services.router.schemas import (
    AgentPatch,
    AgentPut,
    AgentRead,
    DecisionRead,
    MessageCreate,
    MessageRead,
    TicketCreate,
    TicketRead,
    TicketUpdate,
)
from shared.app import Runtime, Session
from shared.auth import Admin, Reader
from shared.errors import Conflict, NotFound
from shared.events import Priority, Status
from shared.pagination import Cursor, Limit, Page, decode_cursor, encode_cursor

router = APIRouter(prefix="/v1")

TicketId = Annotated[str, Path(min_length=3, max_length=255)]
AgentId = Annotated[str, Path(min_length=1, max_length=100)]


def _context(session: Session, runtime: Runtime) -> service.RouterContext:
    return service.RouterContext.for_session(session, runtime)


async def _ticket_read(session: Session, ticket: Ticket) -> TicketRead:
    history = await repository.routing_history(session, ticket.id)
    return TicketRead.model_validate(
        {
            **service.ticket_document(ticket),
            "required_skills": list(ticket.required_skills or []),
            "source_status": ticket.source_status,
            "source_priority": ticket.source_priority,
            "routing_history": [
                DecisionRead(at=d.at, kind=d.kind, changes=d.changes, reason=d.reason)
                for d in history
            ],
        }
    )


@router.post("/tickets", status_code=201, response_model=TicketRead, tags=["tickets"])
async def create_ticket(
    body: TicketCreate,
    session: Session,
    runtime: Runtime,
    _: Admin,
    idempotency_key: Annotated[
        str | None, Header(alias="Idempotency-Key", min_length=1, max_length=255)
    ] = None,
) -> Any:
    """Create a ticket. With ``Idempotency-Key``, a retry with the same body replays the first
    response; the same key with another body is refused (422)."""
    if idempotency_key is not None:
        fingerprint = intake.request_hash(body.model_dump(mode="json"))
        earlier = await intake.claim_idempotency_key(
            session, runtime.clock, idempotency_key, fingerprint
        )
        if earlier is not None:
            if earlier.response is None or earlier.status_code is None:
                raise Conflict("a request with this Idempotency-Key is still in progress")
            return JSONResponse(
                earlier.response,
                status_code=earlier.status_code,
                headers={"Idempotent-Replayed": "true"},
            )
    ticket = await service.create_ticket(_context(session, runtime), body)
    read = await _ticket_read(session, ticket)
    if idempotency_key is not None:
        await intake.store_idempotent_response(
            session, idempotency_key, 201, read.model_dump(mode="json")
        )
    return read


@router.get("/tickets/{ticket_id}", response_model=TicketRead, tags=["tickets"])
async def get_ticket(ticket_id: TicketId, session: Session, _: Reader) -> TicketRead:
    ticket = await repository.get_ticket(session, ticket_id)
    if ticket is None:
        raise NotFound(f"ticket {ticket_id} not found")
    return await _ticket_read(session, ticket)


@router.get("/tickets", response_model=Page[TicketRead], tags=["tickets"])
async def list_tickets(
    session: Session,
    _: Reader,
    status: Annotated[Status | None, Query()] = None,
    priority: Annotated[Priority | None, Query()] = None,
    assignee_id: Annotated[str | None, Query(max_length=100)] = None,
    group: Annotated[str | None, Query(max_length=100)] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[TicketRead]:
    after = None
    if cursor:
        created_at, ticket_id = decode_cursor(cursor, 2)
        try:
            after = (datetime.fromisoformat(created_at), str(ticket_id))
        except (TypeError, ValueError):
            after = None
    tickets = await repository.list_tickets(
        session,
        status=status,
        priority=priority,
        assignee_id=assignee_id,
        group=group,
        limit=limit + 1,
        after=after,
    )
    items = [await _ticket_read(session, t) for t in tickets[:limit]]
    next_cursor = None
    if len(tickets) > limit:
        last = tickets[limit - 1]
        next_cursor = encode_cursor(last.created_at.isoformat(), last.id)
    return Page(items=items, next_cursor=next_cursor)


@router.patch("/tickets/{ticket_id}", response_model=TicketRead, tags=["tickets"])
async def patch_ticket(
    ticket_id: TicketId, body: TicketUpdate, session: Session, runtime: Runtime, _: Admin
) -> TicketRead:
    ticket = await service.update_ticket(_context(session, runtime), ticket_id, body)
    return await _ticket_read(session, ticket)


@router.post(
    "/tickets/{ticket_id}/messages", status_code=201, response_model=MessageRead, tags=["tickets"]
)
async def add_message(
    ticket_id: TicketId, body: MessageCreate, session: Session, runtime: Runtime, _: Admin
) -> MessageRead:
    message = await service.add_message(_context(session, runtime), ticket_id, body)
    return _message_read(message)


def _message_read(message: TicketMessage) -> MessageRead:
    return MessageRead(
        id=message.id,
        ticket_id=message.ticket_id,
        author=message.author,
        author_id=message.author_id,
        public=message.public,
        body=message.body,
        created_at=message.created_at,
    )


# --- agents -----------------------------------------------------------------------------------


def _agent_read(agent: Agent, load: dict[str, int]) -> AgentRead:
    return AgentRead(
        id=agent.id,
        name=agent.name,
        email=agent.email,
        groups=list(agent.groups or []),
        skills=list(agent.skills or []),
        capacity=dict(agent.capacity or {}),
        status=agent.status,
        timezone=agent.timezone,
        load=load,
        created_at=agent.created_at,
        updated_at=agent.updated_at,
    )


@router.put("/agents/{agent_id}", response_model=AgentRead, tags=["agents"])
async def put_agent(
    agent_id: AgentId,
    body: AgentPut,
    session: Session,
    runtime: Runtime,
    response: Response,
    _: Admin,
) -> AgentRead:
    agent, created = await service.put_agent(_context(session, runtime), agent_id, body)
    if created:
        response.status_code = 201
    loads = await repository.agent_loads(session, [agent.id])
    return _agent_read(agent, loads.get(agent.id, {}))


@router.patch("/agents/{agent_id}", response_model=AgentRead, tags=["agents"])
async def patch_agent(
    agent_id: AgentId, body: AgentPatch, session: Session, runtime: Runtime, _: Admin
) -> AgentRead:
    agent = await service.patch_agent(_context(session, runtime), agent_id, body)
    loads = await repository.agent_loads(session, [agent.id])
    return _agent_read(agent, loads.get(agent.id, {}))


@router.get("/agents/{agent_id}", response_model=AgentRead, tags=["agents"])
async def get_agent(agent_id: AgentId, session: Session, _: Reader) -> AgentRead:
    agent = await repository.get_agent(session, agent_id)
    if agent is None:
        raise NotFound(f"agent {agent_id} not found")
    loads = await repository.agent_loads(session, [agent.id])
    return _agent_read(agent, loads.get(agent.id, {}))


@router.get("/agents", response_model=Page[AgentRead], tags=["agents"])
async def list_agents(
    session: Session, _: Reader, limit: Limit = 100, cursor: Cursor = None
) -> Page[AgentRead]:
    after = str(decode_cursor(cursor, 1)[0]) if cursor else None
    agents = await repository.list_agents(session, limit=limit + 1, after=after)
    loads = await repository.agent_loads(session, [a.id for a in agents[:limit]])
    items = [_agent_read(a, loads.get(a.id, {})) for a in agents[:limit]]
    next_cursor = encode_cursor(agents[limit - 1].id) if len(agents) > limit else None
    return Page(items=items, next_cursor=next_cursor)


# --- routing rules ----------------------------------------------------------------------------

RuleId = Annotated[str, Path(min_length=1, max_length=64)]


def _rule_read(row: RoutingRule) -> RoutingRuleRead:
    rule = routing.rule_from_row(row)
    return RoutingRuleRead(
        id=row.id,
        name=row.name,
        position=row.position,
        enabled=row.enabled,
        conditions=rule.conditions,
        actions=rule.actions,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


@router.get("/routing-rules", response_model=Page[RoutingRuleRead], tags=["routing rules"])
async def list_routing_rules(
    session: Session, _: Reader, limit: Limit = 100, cursor: Cursor = None
) -> Page[RoutingRuleRead]:
    after = None
    if cursor:
        position, rule_id = decode_cursor(cursor, 2)
        if isinstance(position, int):
            after = (position, str(rule_id))
    rows = await repository.list_rules(session, limit=limit + 1, after=after)
    items = [_rule_read(row) for row in rows[:limit]]
    next_cursor = None
    if len(rows) > limit:
        last = rows[limit - 1]
        next_cursor = encode_cursor(last.position, last.id)
    return Page(items=items, next_cursor=next_cursor)


@router.post(
    "/routing-rules", status_code=201, response_model=RoutingRuleRead, tags=["routing rules"]
)
async def create_routing_rule(
    body: RoutingRuleIn, session: Session, runtime: Runtime, _: Admin
) -> RoutingRuleRead:
    return _rule_read(await routing.create_rule(_context(session, runtime), body))


@router.get("/routing-rules/{rule_id}", response_model=RoutingRuleRead, tags=["routing rules"])
async def get_routing_rule(rule_id: RuleId, session: Session, _: Reader) -> RoutingRuleRead:
    row = await repository.get_rule(session, rule_id)
    if row is None:
        raise NotFound(f"routing rule {rule_id} not found")
    return _rule_read(row)


@router.put("/routing-rules/{rule_id}", response_model=RoutingRuleRead, tags=["routing rules"])
async def replace_routing_rule(
    rule_id: RuleId, body: RoutingRuleIn, session: Session, runtime: Runtime, _: Admin
) -> RoutingRuleRead:
    return _rule_read(await routing.replace_rule(_context(session, runtime), rule_id, body))


@router.delete("/routing-rules/{rule_id}", status_code=204, tags=["routing rules"])
async def delete_routing_rule(
    rule_id: RuleId, session: Session, runtime: Runtime, _: Admin
) -> Response:
    await routing.delete_rule(_context(session, runtime), rule_id)
    return Response(status_code=204)
