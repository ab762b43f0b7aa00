"""Choosing an agent for a ticket: a pure function over plain data."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class AgentView:
    id: str
    status: str
    groups: frozenset[str] = frozenset()
    skills: frozenset[str] = frozenset()
    capacity: Mapping[str, int] = field(default_factory=dict)
    load: Mapping[str, int] = field(default_factory=dict)
    last_assigned_at: datetime | None = None

    def limit(self, channel: str) -> int:
        """Capacity on a channel; ``*`` is the fallback, no entry means the channel is not theirs."""
        return self.capacity.get(channel, self.capacity.get("*", 0))

    def has_room(self, channel: str) -> bool:
        return self.load.get(channel, 0) < self.limit(channel)


@dataclass(frozen=True)
class TicketNeeds:
    channel: str
    group: str | None = None
    required_skills: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Choice:
    agent_id: str
    strategy: str


def eligible(agent: AgentView, needs: TicketNeeds) -> bool:
    return (
        agent.status == "online"
        and (needs.group is None or needs.group in agent.groups)
        and needs.required_skills <= agent.skills
        and agent.has_room(needs.channel)
    )


def can_take(agent: AgentView, needs: TicketNeeds) -> bool:
    """Online, every required skill and room on the channel (the group is not checked)."""
    return (
        agent.status == "online"
        and needs.required_skills <= agent.skills
        and agent.has_room(needs.channel)
    )


def choose_agent(
    needs: TicketNeeds,
    agents: Sequence[AgentView],
    previous_agent_ids: Sequence[str] = (),
) -> Choice | None:
    """Who takes the ticket, in the issue's order of concerns.

    1. A returning customer goes back to the agent of their open or recent ticket
       (``previous_agent_ids``, most recent first) when that agent is online, has every
       required skill and room on the channel: one point of contact beats group boundaries.
    2. Otherwise the agents of the ticket's group with every required skill, online, with room.
    3. Among them the least loaded (share of the channel's capacity in use); ties go to whoever
       was assigned longest ago, so equal agents take turns (round-robin).
    ``None``: no one fits and the ticket waits in its group's queue.
    """
    by_id = {agent.id: agent for agent in agents}
    for agent_id in previous_agent_ids:
        agent = by_id.get(agent_id)
        if agent is not None and can_take(agent, needs):
            return Choice(agent.id, "returning_customer")
    candidates = [a for a in agents if eligible(a, needs)]
    if not candidates:
        return None
    best = min(candidates, key=lambda agent: load_order(agent, needs.channel))
    return Choice(best.id, "least_loaded")


def load_order(agent: AgentView, channel: str) -> tuple[float, float, str]:
    """The least-loaded order: share of the channel's capacity in use, then who was assigned
    longest ago (round-robin among equals)."""
    ratio = agent.load.get(channel, 0) / max(agent.limit(channel), 1)
    last = agent.last_assigned_at.timestamp() if agent.last_assigned_at else 0.0
    return (ratio, last, agent.id)
