"""router's HTTP API: tickets, messages and agents."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Query, Response
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
from shared.app import Session, context
from shared.auth import Admin, Reader
from shared.errors import Conflict, found
from shared.events import Priority, Status
from shared.pagination import Cursor, Limit, Page

router = APIRouter(prefix="/v1")

TicketId = Annotated[str, Path(min_length=3, max_length=255)]
AgentId = Annotated[str, Path(min_length=1, max_length=100)]
Context = Annotated[service.RouterContext, Depends(context(service.RouterContext))]


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
    ctx: Context,
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
            ctx.session, ctx.clock, idempotency_key, fingerprint
        )
        if earlier is not None:
            if earlier.response is None or earlier.status_code is None:
                raise Conflict("a request with this Idempotency-Key is still in progress")
            return JSONResponse(
                earlier.response,
                status_code=earlier.status_code,
                headers={"Idempotent-Replayed": "true"},
            )
    ticket = await service.create_ticket(ctx, body)
    read = await _ticket_read(ctx.session, ticket)
    if idempotency_key is not None:
        await intake.store_idempotent_response(
            ctx.session, idempotency_key, 201, read.model_dump(mode="json")
        )
    return read


@router.get("/tickets/{ticket_id}", response_model=TicketRead, tags=["tickets"])
async def get_ticket(ticket_id: TicketId, session: Session, _: Reader) -> TicketRead:
    ticket = found(await repository.get_ticket(session, ticket_id), f"ticket {ticket_id}")
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
    tickets = await repository.page_tickets(
        session,
        status=status,
        priority=priority,
        assignee_id=assignee_id,
        group=group,
        limit=limit,
        cursor=cursor,
    )
    items = [await _ticket_read(session, t) for t in tickets.rows]
    return Page(items=items, next_cursor=tickets.next_cursor)


@router.patch("/tickets/{ticket_id}", response_model=TicketRead, tags=["tickets"])
async def patch_ticket(
    ticket_id: TicketId, body: TicketUpdate, ctx: Context, _: Admin
) -> TicketRead:
    ticket = await service.update_ticket(ctx, ticket_id, body)
    return await _ticket_read(ctx.session, ticket)


@router.post(
    "/tickets/{ticket_id}/messages", status_code=201, response_model=MessageRead, tags=["tickets"]
)
async def add_message(
    ticket_id: TicketId, body: MessageCreate, ctx: Context, _: Admin
) -> MessageRead:
    message = await service.add_message(ctx, ticket_id, body)
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
    ctx: Context,
    response: Response,
    _: Admin,
) -> AgentRead:
    agent, created = await service.put_agent(ctx, agent_id, body)
    if created:
        response.status_code = 201
    loads = await repository.agent_loads(ctx.session, [agent.id])
    return _agent_read(agent, loads.get(agent.id, {}))


@router.patch("/agents/{agent_id}", response_model=AgentRead, tags=["agents"])
async def patch_agent(agent_id: AgentId, body: AgentPatch, ctx: Context, _: Admin) -> AgentRead:
    agent = await service.patch_agent(ctx, agent_id, body)
    loads = await repository.agent_loads(ctx.session, [agent.id])
    return _agent_read(agent, loads.get(agent.id, {}))


@router.get("/agents/{agent_id}", response_model=AgentRead, tags=["agents"])
async def get_agent(agent_id: AgentId, session: Session, _: Reader) -> AgentRead:
    agent = found(await repository.get_agent(session, agent_id), f"agent {agent_id}")
    loads = await repository.agent_loads(session, [agent.id])
    return _agent_read(agent, loads.get(agent.id, {}))


@router.get("/agents", response_model=Page[AgentRead], tags=["agents"])
async def list_agents(
    session: Session, _: Reader, limit: Limit = 100, cursor: Cursor = None
) -> Page[AgentRead]:
    agents = await repository.page_agents(session, limit=limit, cursor=cursor)
    loads = await repository.agent_loads(session, [a.id for a in agents.rows])
    return agents.page(lambda a: _agent_read(a, loads.get(a.id, {})))


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
    rules = await repository.page_rules(session, limit=limit, cursor=cursor)
    return rules.page(_rule_read)


@router.post(
    "/routing-rules", status_code=201, response_model=RoutingRuleRead, tags=["routing rules"]
)
async def create_routing_rule(body: RoutingRuleIn, ctx: Context, _: Admin) -> RoutingRuleRead:
    return _rule_read(await routing.create_rule(ctx, body))


@router.get("/routing-rules/{rule_id}", response_model=RoutingRuleRead, tags=["routing rules"])
async def get_routing_rule(rule_id: RuleId, session: Session, _: Reader) -> RoutingRuleRead:
    return _rule_read(found(await repository.get_rule(session, rule_id), f"routing rule {rule_id}"))


@router.put("/routing-rules/{rule_id}", response_model=RoutingRuleRead, tags=["routing rules"])
async def replace_routing_rule(
    rule_id: RuleId, body: RoutingRuleIn, ctx: Context, _: Admin
) -> RoutingRuleRead:
    return _rule_read(await routing.replace_rule(ctx, rule_id, body))


@router.delete("/routing-rules/{rule_id}", status_code=204, tags=["routing rules"])
async def delete_routing_rule(rule_id: RuleId, ctx: Context, _: Admin) -> Response:
    await routing.delete_rule(ctx, rule_id)
    return Response(status_code=204)
