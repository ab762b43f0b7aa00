"""The assignment choice as a pure function, with property tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from services.router.assignment import AgentView, TicketNeeds, choose_agent

CHANNELS = ["email", "chat", "phone"]
GROUPS = ["support", "billing", "tier2"]
SKILLS = ["billing", "spanish", "api"]
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def agent(agent_id: str, **kwargs: object) -> AgentView:
    values: dict[str, object] = {
        "status": "online",
        "groups": frozenset({"support"}),
        "capacity": {"email": 5, "chat": 2},
    }
    values.update(kwargs)
    return AgentView(id=agent_id, **values)  # type: ignore[arg-type]


agents_strategy = st.lists(
    st.builds(
        AgentView,
        id=st.text(alphabet="abcdefgh", min_size=1, max_size=4),
        status=st.sampled_from(["online", "away", "offline"]),
        groups=st.frozensets(st.sampled_from(GROUPS)),
        skills=st.frozensets(st.sampled_from(SKILLS)),
        capacity=st.dictionaries(st.sampled_from([*CHANNELS, "*"]), st.integers(0, 4)),
        load=st.dictionaries(st.sampled_from(CHANNELS), st.integers(0, 5)),
        last_assigned_at=st.none() | st.integers(0, 100).map(lambda m: T0 + timedelta(minutes=m)),
    ),
    max_size=8,
    unique_by=lambda a: a.id,
)
needs_strategy = st.builds(
    TicketNeeds,
    channel=st.sampled_from(CHANNELS),
    group=st.none() | st.sampled_from(GROUPS),
    required_skills=st.frozensets(st.sampled_from(SKILLS), max_size=2),
)


@given(needs_strategy, agents_strategy, st.lists(st.text(alphabet="abcdefgh", max_size=4)))
def test_choice_is_online_skilled_and_within_capacity(
    needs: TicketNeeds, agents: list[AgentView], previous: list[str]
) -> None:
    choice = choose_agent(needs, agents, previous)
    if choice is None:
        # Nobody fitting was passed over.
        assert not any(
            a.status == "online"
            and needs.required_skills <= a.skills
            and a.has_room(needs.channel)
            and (needs.group is None or needs.group in a.groups)
            for a in agents
        )
        return
    chosen = next(a for a in agents if a.id == choice.agent_id)
    assert chosen.status == "online"
    assert needs.required_skills <= chosen.skills
    assert chosen.load.get(needs.channel, 0) + 1 <= chosen.limit(needs.channel)
    if choice.strategy == "least_loaded":
        assert needs.group is None or needs.group in chosen.groups
    else:
        assert choice.strategy == "returning_customer" and chosen.id in previous


@given(needs_strategy, agents_strategy)
def test_least_loaded_wins(needs: TicketNeeds, agents: list[AgentView]) -> None:
    choice = choose_agent(needs, agents)
    if choice is None:
        return
    chosen = next(a for a in agents if a.id == choice.agent_id)

    def ratio(a: AgentView) -> float:
        return a.load.get(needs.channel, 0) / max(a.limit(needs.channel), 1)

    for other in agents:
        if (
            other.status == "online"
            and needs.required_skills <= other.skills
            and other.has_room(needs.channel)
            and (needs.group is None or needs.group in other.groups)
        ):
            assert ratio(chosen) <= ratio(other)


def test_ties_go_round_robin_to_whoever_waited_longest() -> None:
    needs = TicketNeeds(channel="email", group="support")
    a = agent("a", last_assigned_at=T0 + timedelta(minutes=5))
    b = agent("b", last_assigned_at=T0 + timedelta(minutes=1))
    c = agent("c", last_assigned_at=None)
    assert choose_agent(needs, [a, b, c]) is not None
    assert choose_agent(needs, [a, b, c]).agent_id == "c"  # type: ignore[union-attr]
    assert choose_agent(needs, [a, b]).agent_id == "b"  # type: ignore[union-attr]


def test_returning_customer_goes_back_to_their_agent_when_they_have_room() -> None:
    needs = TicketNeeds(channel="chat", group="support")
    busy = agent("busy", load={"chat": 1})
    idle = agent("idle")
    choice = choose_agent(needs, [busy, idle], ["busy"])
    assert choice is not None and (choice.agent_id, choice.strategy) == (
        "busy",
        "returning_customer",
    )
    full = agent("busy", load={"chat": 2})
    choice = choose_agent(needs, [full, idle], ["busy"])
    assert choice is not None and (choice.agent_id, choice.strategy) == ("idle", "least_loaded")
    away = agent("busy", status="away")
    choice = choose_agent(needs, [away, idle], ["busy"])
    assert choice is not None and choice.agent_id == "idle"


def test_required_skills_and_group_filter() -> None:
    needs = TicketNeeds(channel="email", group="support", required_skills=frozenset({"billing"}))
    assert choose_agent(needs, [agent("a"), agent("b", groups=frozenset({"tier2"}))]) is None
    skilled = agent("s", skills=frozenset({"billing", "api"}))
    choice = choose_agent(needs, [agent("a"), skilled])
    assert choice is not None and choice.agent_id == "s"
