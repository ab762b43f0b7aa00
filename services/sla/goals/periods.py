"""Goal periods: pure functions over local dates in the goal's time zone.

A period is a half-open range of local days ``[start, end)``: an ISO week (Monday first), a
calendar month, a calendar quarter, or for ``rolling_days`` the ``days`` local days ending with
the day asked about. Its instants are local midnights, so a week across a DST change is 167 or
169 hours long.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

KINDS = ("week", "month", "quarter", "rolling_days")


@dataclass(frozen=True)
class Period:
    start: date
    end: date  # exclusive

    def days(self) -> list[date]:
        return [self.start + timedelta(days=i) for i in range((self.end - self.start).days)]

    def start_at(self, zone: ZoneInfo) -> datetime:
        return local_midnight(self.start, zone)

    def end_at(self, zone: ZoneInfo) -> datetime:
        return local_midnight(self.end, zone)


def local_midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=zone)


def local_day(at: datetime, zone: ZoneInfo) -> date:
    """The local date of an instant in ``zone``: the day bucket a sample belongs to."""
    return at.astimezone(zone).date()


def _add_months(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def period_of(kind: str, days: int | None, day: date) -> Period:
    """The period of ``kind`` that contains local ``day``."""
    if kind == "week":
        start = day - timedelta(days=day.weekday())
        return Period(start, start + timedelta(days=7))
    if kind == "month":
        start = day.replace(day=1)
        return Period(start, _add_months(start, 1))
    if kind == "quarter":
        start = date(day.year, (day.month - 1) // 3 * 3 + 1, 1)
        return Period(start, _add_months(start, 3))
    if kind == "rolling_days":
        assert days is not None and days > 0
        return Period(day - timedelta(days=days - 1), day + timedelta(days=1))
    raise ValueError(f"unknown period kind {kind!r}")


def previous_period(kind: str, days: int | None, period: Period) -> Period:
    if kind == "rolling_days":
        assert days is not None
        return Period(period.start - timedelta(days=days), period.start)
    return period_of(kind, days, period.start - timedelta(days=1))


def previous_periods(kind: str, days: int | None, period: Period, count: int) -> list[Period]:
    """``count`` periods before ``period``, oldest first."""
    found: list[Period] = []
    current = period
    for _ in range(count):
        current = previous_period(kind, days, current)
        found.append(current)
    return found[::-1]


def periods_between(kind: str, days: int | None, first: date, last: date) -> list[Period]:
    """The consecutive periods covering local days ``first``..``last`` (rolling periods tile
    backwards from ``last``)."""
    current = period_of(kind, days, last)
    found = [current]
    while current.start > first:
        current = previous_period(kind, days, current)
        found.append(current)
    return found[::-1]


def utc(at: datetime) -> datetime:
    return at.astimezone(UTC)
