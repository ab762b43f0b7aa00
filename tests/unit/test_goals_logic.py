"""Pure logic of service goals: periods, samples, projection, status, policy replay."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.sla.calendar import business_seconds_between, parse_calendar
from services.sla.goals import metrics, periods, projection, repository, service, whatif
from services.sla.goals.models import Timeline
from services.sla.goals.projection import Totals

LONDON = ZoneInfo("Europe/London")
OFFICE = parse_calendar(
    "Europe/London", {d: [["09:00", "17:00"]] for d in ("mon", "tue", "wed", "thu", "fri")}
)


def test_periods_in_the_goal_timezone_across_dst() -> None:
    # UK clocks go back on Sunday 25 October 2026: that ISO week is 169 hours long.
    week = periods.period_of("week", None, date(2026, 10, 25))
    assert (week.start, week.end) == (date(2026, 10, 19), date(2026, 10, 26))
    assert periods.utc(week.end_at(LONDON)) - periods.utc(week.start_at(LONDON)) == timedelta(
        hours=169
    )
    assert week.start_at(LONDON).isoformat() == "2026-10-19T00:00:00+01:00"
    # 23:30 UTC on Sunday is still Sunday in London (GMT) but Monday in Berlin (CET).
    late = datetime(2026, 10, 25, 23, 30, tzinfo=UTC)
    assert periods.local_day(late, LONDON) == date(2026, 10, 25)
    assert periods.local_day(late, ZoneInfo("Europe/Berlin")) == date(2026, 10, 26)
    assert periods.period_of("quarter", None, date(2026, 11, 30)).start == date(2026, 10, 1)
    assert periods.period_of("month", None, date(2026, 12, 31)).end == date(2027, 1, 1)
    rolling = periods.period_of("rolling_days", 7, date(2026, 11, 30))
    assert (rolling.start, rolling.end) == (date(2026, 11, 24), date(2026, 12, 1))
    assert periods.previous_periods("week", None, week, 2)[0].start == date(2026, 10, 5)


def _events(*rows: tuple[float, str, str | None]) -> list[Any]:
    return [[0, "s", "open"], [0, "p", "normal"], *rows]


def test_business_time_first_response_across_the_dst_weekend() -> None:
    created = datetime(2026, 10, 23, 15, 30, tzinfo=UTC)  # Friday 16:30 BST
    reply = datetime(2026, 10, 26, 9, 20, tzinfo=UTC)  # Monday 09:20 GMT
    events = _events(((reply - created).total_seconds(), "a", None))
    business = metrics.timeline_samples("first_response_time", 3600, created, events, OFFICE)
    assert [(s.value, s.good) for s in business] == [(50 * 60, 1)]
    wall = metrics.timeline_samples("first_response_time", 3600, created, events, None)
    assert [(s.value, s.good) for s in wall] == [((reply - created).total_seconds(), 0)]


def test_timeline_metrics() -> None:
    t0 = datetime(2026, 11, 2, 9, tzinfo=UTC)
    events = _events(
        (60, "a", None),
        (120, "c", None),
        (180, "c", None),
        (300, "a", None),
        (400, "s", "solved"),
        (500, "s", "open"),
        (600, "s", "solved"),
    )

    def run(metric: str) -> list[tuple[str, float, int]]:
        samples = metrics.timeline_samples(metric, 100, t0, events, None)
        return [(s.key, s.value, s.good) for s in samples]

    assert run("first_response_time") == [("first_response", 60, 1)]
    assert run("next_response_time") == [("next_response:0", 180, 0)]
    assert run("resolution_time") == [("resolution", 400, 0)]
    assert run("first_contact_resolution") == [("first_contact_resolution", 0.0, 0)]
    assert run("reopen_rate") == [("reopen", 1.0, 0)]
    detractor = metrics.survey_sample("nps", "s", 3, t0)
    assert (detractor.good, detractor.bad) == (0, 1)
    assert metrics.survey_sample("ces", "s", 5, t0).good == 1
    assert metrics.survey_sample("csat", "s", 3, t0).good == 0


class _NoCalendars:
    """``sync_ticket``'s context for goals without a calendar: nothing is read."""

    async def calendar(self, calendar_id: str | None) -> None:
        raise AssertionError(f"no calendar should be read, not {calendar_id}")


def _goal(goal_id: str, channels: list[str], period: str = "week") -> service.GoalDef:
    return service.GoalDef(
        goal_id, "first_response_time", {"channel": channels}, 60.0, None, None, 80.0,
        period, None, "Europe/London", f"set-{goal_id}",
    )  # fmt: skip


async def test_goals_that_measure_alike_share_samples_but_each_keeps_its_own_totals() -> None:
    """Three goals measure first replies alike. ``weekly`` and ``monthly`` (one scope) share
    the ticket's samples; ``weekly`` already holds an older sample of the ticket (replaced),
    ``monthly`` none (added); ``email`` does not cover chat any more, so its sample goes."""
    t0 = datetime(2026, 11, 2, 9, tzinfo=UTC)
    timeline = Timeline(
        ticket_id="t1", created_at=t0, channel="chat", group=None, priority="normal",
        status="open", document={}, events=[[0.0, "s", "open"], [45.0, "a", None]],
        version=2, demo=False, dirty=False,
    )  # fmt: skip
    goals = [
        _goal("weekly", ["chat"]),
        _goal("monthly", ["chat"], "month"),
        _goal("email", ["email"]),
    ]
    old = ["first_response", "2026-11-01", 0, 0, 90.0]  # as if the reply had taken 90 s
    stored = {"set-weekly": [old], "set-email": [old]}
    writes = repository.SampleWrites()

    changed = await service.sync_ticket(_NoCalendars(), timeline, goals, stored, (), writes)  # type: ignore[arg-type]

    new = ["first_response", "2026-11-02", 1, 0, 45.0]
    assert changed
    assert writes.patches == {"t1": {"set-weekly": [new], "set-monthly": [new], "set-email": []}}
    totals = {
        (r["goal_id"], r["day"].isoformat()): (r["samples"], r["good"], r["value_sum"])
        for r in writes.bucket_rows()
    }
    assert totals == {
        ("weekly", "2026-11-01"): (-1, 0, -90.0),
        ("weekly", "2026-11-02"): (1, 1, 45.0),
        ("monthly", "2026-11-02"): (1, 1, 45.0),
        ("email", "2026-11-01"): (-1, 0, -90.0),
    }
    # Again with what is now stored: nothing moves.
    again = repository.SampleWrites()
    stored = writes.patches["t1"]
    assert not await service.sync_ticket(_NoCalendars(), timeline, goals, stored, (), again)  # type: ignore[arg-type]
    assert again.bucket_rows() == [] and again.patches == {}


def test_values_match_the_survey_definitions() -> None:
    # NPS: 3 promoters, 1 passive, 1 detractor -> (3 - 1) / 5 = 40.
    scores = [10, 9, 9, 8, 2]
    totals = Totals()
    for score in scores:
        sample = metrics.survey_sample("nps", "x", score, datetime(2026, 1, 1, tzinfo=UTC))
        totals.add(Totals(1, sample.good, sample.bad, sample.value))
    assert projection.value_of("nps", totals) == 40.0
    assert projection.value_of("reopen_rate", Totals(10, 9, 0, 0)) == 10.0
    assert projection.is_met("reopen_rate", 90.0, 10.0)
    assert not projection.is_met("reopen_rate", 89.0, 10.0)


def test_expected_remaining_from_the_same_weekdays() -> None:
    history = [[10, 10, 10, 10, 10, 0, 0], [20, 20, 20, 20, 20, 0, 0]]
    # Wednesday, half the day left: half of Wednesday plus Thursday and Friday.
    assert projection.expected_remaining(2, 0.5, 7, history, 0) == pytest.approx(37.5)
    # Without history the current pace goes on: 30 samples in 1.5 days, 5.5 days to go.
    assert projection.expected_remaining(1, 0.5, 7, [], 30) == pytest.approx(110)


def test_projection_needed_and_status() -> None:
    current = Totals(20, 10, 0, 0)
    result = projection.project("first_response_time", 80, current, Totals(), 80)
    # 50 % so far, rate 0.5 going on: projected 50, and 87.5 % of the next 80 must meet.
    assert result.value == 50.0
    assert result.needed == pytest.approx(87.5)
    assert result.low is not None and result.high is not None
    assert result.low < 50 < result.high
    assert projection.status_of("first_response_time", 80, current, False, result) == "at_risk"
    hopeless = projection.project("first_response_time", 80, current, Totals(), 10)
    assert projection.status_of("first_response_time", 80, current, False, hopeless) == "missed"
    good = projection.project("first_response_time", 80, Totals(20, 19, 0, 0), Totals(), 80)
    assert (
        projection.status_of("first_response_time", 80, Totals(20, 19), False, good) == "on_track"
    )
    assert projection.status_of("csat", 80, Totals(), False, good) == "no_data"
    assert projection.status_of("csat", 80, Totals(10, 8), True, good) == "met"
    assert projection.status_of("csat", 80, Totals(10, 7), True, good) == "missed"


@settings(max_examples=60, deadline=None)
@given(
    st.integers(min_value=0, max_value=60 * 24 * 40),
    st.integers(min_value=0, max_value=60 * 24 * 20),
)
def test_business_clock_matches_calendar_arithmetic(start_minutes: int, length: int) -> None:
    origin = datetime(2026, 10, 1, tzinfo=UTC)
    clock = whatif.BusinessClock(OFFICE, origin, origin + timedelta(days=70))
    a = origin + timedelta(minutes=start_minutes, seconds=17)
    b = a + timedelta(minutes=length)
    assert clock.between(a.timestamp(), b.timestamp()) == pytest.approx(
        business_seconds_between(OFFICE, a, b), abs=1e-3
    )


def test_policy_replay_pauses_reopens_and_priority() -> None:
    targets: dict[tuple[str, str], tuple[int, whatif.BusinessClock | None]] = {
        (priority, metric): (minutes, None)
        for priority, minutes in (("normal", 10), ("urgent", 1))
        for metric in whatif.SLA_METRICS
    }
    pauses = {m: frozenset({"pending"}) for m in whatif.SLA_METRICS}
    events = [
        [0, "s", "open"],
        [0, "p", "normal"],
        [100.0, "s", "pending"],  # first response paused from 100 s
        [1000.0, "s", "open"],  # ...to 1000 s
        [1300.0, "a", None],  # first response: 100 + 300 = 400 s
        [1400.0, "c", None],  # next response starts
        [1500.0, "p", "urgent"],
        [1500.0, "a", None],  # next response 100 s against urgent's 60 s: breached
        [2000.0, "s", "solved"],
        [2100.0, "s", "open"],  # reopened: resolution runs again
        [2200.0, "s", "solved"],
    ]
    replay = whatif.PolicyReplay(targets, pauses)
    replay.ticket(1_000_000.0, events)
    assert replay.taken == {
        "first_response": [400.0],
        "next_response": [100.0],
        "resolution": [100 + 1000.0 + 100.0],  # 1200 s against normal's 600 s
    }
    assert replay.breaches == {"first_response": 0, "next_response": 1, "resolution": 1}
    assert replay.open == dict.fromkeys(whatif.SLA_METRICS, 0)
    # A ticket created pending and never answered: both timers still open, none stopped.
    replay.ticket(2_000_000.0, [[0, "s", "pending"], [0, "p", "normal"]])
    assert replay.open == {"first_response": 1, "next_response": 0, "resolution": 1}
    rows = {row["metric"]: row for row in replay.metrics()}
    assert (rows["resolution"]["timers"], rows["resolution"]["compliance"]) == (1, 0.0)
    assert rows["next_response"]["median_seconds"] == 100.0


def test_policy_replay_counts_business_time_of_each_span() -> None:
    """Paused spans are left out, and each span is counted in the target's calendar."""
    origin = datetime(2026, 10, 19, tzinfo=UTC)  # a Monday
    clock = whatif.BusinessClock(OFFICE, origin, origin + timedelta(days=30))
    created = datetime(2026, 10, 23, 15, 30, tzinfo=UTC).timestamp()  # Friday 16:30 BST
    monday = datetime(2026, 10, 26, 9, 20, tzinfo=UTC).timestamp()  # Monday 09:20 GMT
    replay = whatif.PolicyReplay(
        {("normal", "first_response"): (60, clock)}, {m: frozenset() for m in whatif.SLA_METRICS}
    )
    replay.ticket(created, [[0, "s", "open"], [0, "p", "normal"], [monday - created, "a", None]])
    # Friday 16:30-17:00 BST and Monday 09:00-09:20 GMT: 50 minutes, within the hour.
    assert replay.taken["first_response"] == [pytest.approx(50 * 60)]
    assert replay.breaches["first_response"] == 0
