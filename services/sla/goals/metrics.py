"""What a sample of each goal metric is: pure functions over a ticket's timeline or an answer.

A sample has a key (unique per goal and ticket, so a redelivery replaces it), the instant it
completes (the period it counts in), whether it is good (meets the goal's threshold or is a
satisfied answer), whether it is bad (NPS detractors only) and its raw value (seconds or score).

- ``first_response_time``: creation to the first public agent reply (completes at the reply).
- ``next_response_time``: each customer message after the first reply, to the next public
  agent reply (one sample per such wait, completing at the reply).
- ``resolution_time``: creation to the first solve (completes at the solve).
- ``first_contact_resolution``: at the first solve; good when exactly one public agent reply
  came before it and the ticket is never reopened.
- ``reopen_rate``: at the first solve; good while the ticket is never reopened (the value is the
  share that is reopened).
- ``csat`` (1-5, good = 4-5), ``ces`` (1-7, good = 5-7), ``nps`` (0-10, good = 9-10,
  bad = 0-6): one sample per answer, completing when it is answered.
- ``sla_compliance``: one sample per sla timer of ``sla_metric`` when it stops; good when met.

Times are business seconds in the goal's calendar when it has one, else elapsed seconds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from services.sla.calendar import Calendar, business_seconds_between

TIME_METRICS = ("first_response_time", "next_response_time", "resolution_time")
SURVEY_METRICS = ("csat", "nps", "ces")
TIMELINE_METRICS = (*TIME_METRICS, "first_contact_resolution", "reopen_rate")
METRICS = (*TIMELINE_METRICS, "sla_compliance", *SURVEY_METRICS)
DONE = ("solved", "closed")
# A ticket may complete samples well after it was created: backfills and replays also read
# tickets created this long before the range they measure.
CREATED_SLACK = timedelta(days=60)


class Sample(NamedTuple):
    key: str
    completed_at: datetime
    good: int
    bad: int
    value: float


def in_scope(scope: dict[str, Any], channel: str, group: str | None, priority: str) -> bool:
    """Empty or absent lists match everything."""
    for name, actual in (("channel", channel), ("group", group), ("priority", priority)):
        wanted = scope.get(name)
        if wanted and actual not in wanted:
            return False
    return True


@dataclass(slots=True)
class TimelineFacts:
    """What every timeline metric reads of a ticket's timeline, gathered in one walk of it.
    Instants are the timeline's own: seconds since the ticket was ``created_at``."""

    created_at: datetime
    first_reply: float | None = None
    first_solve: float | None = None
    replies_before_solve: int = 0
    reopened: bool = False
    waits: list[tuple[float, float]] = field(default_factory=list)
    # Instants made of offsets so far (several metrics complete at the first reply or solve):
    # one datetime each, whose hash is then computed once too.
    instants: dict[float, datetime] = field(default_factory=dict)

    def instant(self, offset: float) -> datetime:
        found = self.instants.get(offset)
        if found is None:
            found = self.instants[offset] = self.created_at + timedelta(seconds=offset)
        return found


def timeline_facts(created_at: datetime, events: Sequence[Sequence[Any]]) -> TimelineFacts:
    """The first reply and solve, the replies before it, whether the ticket was reopened, and
    the customer's waits for a reply (from each message after the first reply to the next),
    from the stored ``[seconds since created, code, value]`` rows, in order."""
    facts = TimelineFacts(created_at)
    status: str | None = None
    waiting_since: float | None = None
    for offset, code, value in events:
        if code == "a":
            if facts.first_reply is None:
                facts.first_reply = offset
            elif waiting_since is not None:
                facts.waits.append((waiting_since, offset))
                waiting_since = None
            if facts.first_solve is None:
                facts.replies_before_solve += 1
        elif code == "c":
            if facts.first_reply is not None and waiting_since is None and status not in DONE:
                waiting_since = offset
        elif code == "s":
            if value in DONE and status not in DONE and facts.first_solve is None:
                facts.first_solve = offset
            elif value not in DONE and status in DONE and facts.first_solve is not None:
                facts.reopened = True
            status = value
    return facts


def facts_samples(
    metric: str,
    threshold_seconds: float | None,
    facts: TimelineFacts,
    calendar: Calendar,
) -> list[Sample]:
    """The samples of one timeline metric, from the ticket's ``timeline_facts``: times in
    ``calendar``'s business hours, or elapsed (the offsets' difference) without one."""
    limit = threshold_seconds if threshold_seconds is not None else float("inf")

    def timed(key: str, start: float, end: float) -> Sample:
        completed = facts.instant(end)
        if calendar is None:
            took = max(0.0, round(float(end) - start, 6))  # to the microsecond, as instants are
        else:
            began = facts.instant(start)
            took = max(0.0, business_seconds_between(calendar, began, completed))
        return Sample(key, completed, int(took <= limit), 0, took)

    first_reply, first_solve = facts.first_reply, facts.first_solve
    if metric == "first_response_time":
        return [] if first_reply is None else [timed("first_response", 0.0, first_reply)]
    if metric == "next_response_time":
        return [
            timed(f"next_response:{i}", start, end) for i, (start, end) in enumerate(facts.waits)
        ]
    if metric == "resolution_time":
        return [] if first_solve is None else [timed("resolution", 0.0, first_solve)]
    if metric not in ("first_contact_resolution", "reopen_rate"):
        raise ValueError(f"{metric} is not a timeline metric")
    if first_solve is None:
        return []
    solved = facts.instant(first_solve)
    if metric == "first_contact_resolution":
        good = facts.replies_before_solve == 1 and not facts.reopened
        return [Sample("first_contact_resolution", solved, int(good), 0, float(good))]
    return [Sample("reopen", solved, int(not facts.reopened), 0, float(facts.reopened))]


def timeline_samples(
    metric: str,
    threshold_seconds: float | None,
    created_at: datetime,
    events: Sequence[Sequence[Any]],
    calendar: Calendar,
) -> list[Sample]:
    """The samples a ticket's timeline (its stored rows) gives for one timeline metric."""
    return facts_samples(metric, threshold_seconds, timeline_facts(created_at, events), calendar)


def survey_sample(kind: str, survey_id: str, score: int, answered_at: datetime) -> Sample:
    if kind == "csat":
        good, bad = score >= 4, False
    elif kind == "ces":
        good, bad = score >= 5, False
    elif kind == "nps":
        good, bad = score >= 9, score <= 6
    else:
        raise ValueError(f"unknown survey kind {kind!r}")
    return Sample(f"survey:{survey_id}", answered_at, int(good), int(bad), float(score))


def timer_sample(metric: str, cycle: int, met_at: datetime, met: bool, seconds: float) -> Sample:
    return Sample(f"sla:{metric}:{cycle}", met_at, int(met), 0, seconds)
