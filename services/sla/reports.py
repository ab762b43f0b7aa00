"""SLA reports as pure functions over tickets and their timers.

Per group (priority, channel, group or agent) of the tickets created in the window:

- ``tickets``: how many;
- ``compliance_pct`` per metric: of the timers decided so far (met, or breached), the share met
  in time (``null`` when none is decided);
- ``first_response_seconds`` / ``resolution_seconds``: median and p90 of the business time used
  by met timers, in seconds (pauses excluded, on the timer's calendar); the older
  ``*_minutes`` fields carry the same in minutes;
- ``replies_before_resolution``: mean public agent replies before the first solve;
- ``first_contact_resolution_pct``: solved tickets solved with one reply and never reopened;
- ``reopen_pct``: solved tickets reopened at least once;
- ``escalation_pct``: tickets with at least one escalation.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any, Literal

from services.sla.models import Timer, TrackedTicket

GroupBy = Literal["priority", "channel", "group", "agent"]
METRICS = ("first_response", "next_response", "resolution")


def percentile(values: Sequence[float], fraction: float) -> float | None:
    """Linear-interpolated percentile (``fraction`` in [0, 1]); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * fraction
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _pct(part: int, whole: int) -> float | None:
    return None if whole == 0 else round(100.0 * part / whole, 2)


def _minutes(values: list[float]) -> dict[str, float | None]:
    median, p90 = percentile(values, 0.5), percentile(values, 0.9)
    return {
        "median": None if median is None else round(median / 60, 2),
        "p90": None if p90 is None else round(p90 / 60, 2),
    }


def _seconds(values: list[float]) -> dict[str, float | None]:
    median, p90 = percentile(values, 0.5), percentile(values, 0.9)
    return {
        "median": None if median is None else round(median, 1),
        "p90": None if p90 is None else round(p90, 1),
    }


def group_key(ticket: TrackedTicket, group_by: GroupBy) -> str | None:
    if group_by == "agent":
        return ticket.assignee_id
    value: str | None = getattr(ticket, group_by)
    return value


def sla_report(
    tickets: Iterable[TrackedTicket], timers: Iterable[Timer], group_by: GroupBy
) -> list[dict[str, Any]]:
    by_ticket: dict[str, list[Timer]] = defaultdict(list)
    for timer in timers:
        by_ticket[timer.ticket_id].append(timer)
    groups: dict[str | None, list[TrackedTicket]] = defaultdict(list)
    for ticket in tickets:
        groups[group_key(ticket, group_by)].append(ticket)
    rows = []
    for key in sorted(groups, key=lambda k: (k is None, k or "")):
        members = groups[key]
        own = [t for ticket in members for t in by_ticket[ticket.id]]
        compliance: dict[str, float | None] = {}
        for metric in METRICS:
            decided = [
                t for t in own if t.metric == metric and (t.met_at or t.breached_at) is not None
            ]
            compliance[metric] = _pct(
                sum(1 for t in decided if t.breached_at is None), len(decided)
            )

        def used(metric: str, timers: list[Timer] = own) -> list[float]:
            return [t.consumed_seconds for t in timers if t.metric == metric and t.met_at]

        solved = [t for t in members if t.replies_before_solve is not None]
        replies = [t.replies_before_solve or 0 for t in solved]
        rows.append(
            {
                "group": key,
                "tickets": len(members),
                "compliance_pct": compliance,
                "first_response_seconds": _seconds(used("first_response")),
                "resolution_seconds": _seconds(used("resolution")),
                # Kept for clients of the first release; the seconds show a 60-second target.
                "first_response_minutes": _minutes(used("first_response")),
                "resolution_minutes": _minutes(used("resolution")),
                "replies_before_resolution": (
                    round(sum(replies) / len(replies), 2) if replies else None
                ),
                "first_contact_resolution_pct": _pct(
                    sum(1 for t in solved if t.replies_before_solve == 1 and t.reopens == 0),
                    len(solved),
                ),
                "reopen_pct": _pct(sum(1 for t in solved if t.reopens > 0), len(solved)),
                "escalation_pct": _pct(sum(1 for t in members if t.escalations > 0), len(members)),
            }
        )
    return rows
