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


def choose_agent(needs: TicketNeeds, agents: Sequence[AgentView]) -> Choice | None:
    """The least-loaded eligible agent; ties go to whoever was assigned longest ago (round-robin)."""
    candidates = [a for a in agents if eligible(a, needs)]
    if not candidates:
        return None

    def order(agent: AgentView) -> tuple[float, float, str]:
        ratio = agent.load.get(needs.channel, 0) / max(agent.limit(needs.channel), 1)
        last = agent.last_assigned_at.timestamp() if agent.last_assigned_at else 0.0
        return (ratio, last, agent.id)

    best = min(candidates, key=order)
    return Choice(best.id, "least_loaded")
