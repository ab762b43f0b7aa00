"""Business-time arithmetic: pure functions over a calendar, no I/O.

A ``BusinessCalendar`` is an IANA time zone, opening intervals per weekday (several per day, for
split shifts and lunch breaks) and holidays (local dates on which nothing is open). ``None``
stands for the null calendar: around the clock, 24x7, where business time is elapsed time.

Intervals are local wall-clock times, turned into UTC instants day by day through ``zoneinfo``,
so a business hour is always a real hour: on the day clocks go forward an interval spanning
the gap is an hour shorter, on the day they go back an hour longer. A local time inside a DST gap
resolves with ``fold=0`` (the offset before the change).

Arithmetic runs in whole microseconds so that ``add_business_seconds`` and
``business_seconds_between`` are exact inverses. Intervals are half-open ``[open, close)``;
a deadline that uses up the last second of an interval falls on its ``close`` instant.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MINUTES_PER_DAY = 24 * 60
# A calendar with no opening in this many consecutive days is treated as never open.
MAX_CLOSED_DAYS = 3 * 366
_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$|^24:00$")
_MICROS = 1_000_000


class CalendarError(ValueError):
    """A calendar definition that cannot be used; ``field`` names the offending part."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True)
class BusinessCalendar:
    timezone: str
    # weekday (0 = Monday) -> sorted, non-overlapping (open, close) minutes from local midnight
    hours: Mapping[int, tuple[tuple[int, int], ...]]
    holidays: frozenset[date] = field(default_factory=frozenset)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


Calendar = BusinessCalendar | None


def _minutes(value: object, where: str) -> int:
    if not isinstance(value, str) or not _HHMM.match(value):
        raise CalendarError(where, f"{value!r} is not a time HH:MM between 00:00 and 24:00")
    hours, minutes = value.split(":")
    return int(hours) * 60 + int(minutes)


def parse_calendar(
    timezone: str, hours: Mapping[str, Sequence[Sequence[str]]], holidays: Sequence[str] = ()
) -> BusinessCalendar:
    """Validate a calendar as the API receives it; raises ``CalendarError`` naming the problem."""
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise CalendarError("timezone", f"unknown IANA time zone {timezone!r}") from exc
    parsed: dict[int, tuple[tuple[int, int], ...]] = {}
    for day, intervals in hours.items():
        if day not in DAYS:
            raise CalendarError(f"hours.{day}", f"unknown day {day!r}; use one of {list(DAYS)}")
        spans: list[tuple[int, int]] = []
        for index, interval in enumerate(intervals):
            where = f"hours.{day}.{index}"
            if len(interval) != 2:
                raise CalendarError(where, "an interval is [open, close], e.g. ['09:00','17:00']")
            start, end = _minutes(interval[0], where), _minutes(interval[1], where)
            if end <= start:
                raise CalendarError(where, f"interval {list(interval)} closes before it opens")
            spans.append((start, end))
        spans.sort()
        for previous, current in itertools.pairwise(spans):
            if current[0] < previous[1]:
                raise CalendarError(
                    f"hours.{day}", f"intervals {list(previous)} and {list(current)} overlap"
                )
        if spans:
            parsed[DAYS.index(day)] = tuple(spans)
    if not parsed:
        raise CalendarError("hours", "a calendar needs at least one opening interval")
    days: set[date] = set()
    for index, holiday in enumerate(holidays):
        try:
            days.add(date.fromisoformat(holiday))
        except (TypeError, ValueError) as exc:
            raise CalendarError(
                f"holidays.{index}", f"{holiday!r} is not a date YYYY-MM-DD"
            ) from exc
    return BusinessCalendar(timezone=timezone, hours=parsed, holidays=frozenset(days))


def _to_micros(seconds: float) -> int:
    return round(seconds * _MICROS)


def _local_instant(day: date, minutes: int, zone: ZoneInfo) -> datetime:
    day, minutes = day + timedelta(days=minutes // MINUTES_PER_DAY), minutes % MINUTES_PER_DAY
    local = datetime.combine(day, time(minutes // 60, minutes % 60), tzinfo=zone)
    return local.astimezone(UTC)


def _micros_between(a: datetime, b: datetime) -> int:
    return (b - a) // timedelta(microseconds=1)


def open_spans(calendar: BusinessCalendar, start: datetime) -> Iterator[tuple[datetime, datetime]]:
    """Open spans ``(open, close)`` in UTC, in order, from ``start`` on (the first one clipped)."""
    zone = calendar.zone
    start = start.astimezone(UTC)
    day = start.astimezone(zone).date() - timedelta(days=1)
    closed_days = 0
    while True:
        spans = () if day in calendar.holidays else calendar.hours.get(day.weekday(), ())
        found = False
        for open_minutes, close_minutes in spans:
            opens = _local_instant(day, open_minutes, zone)
            closes = _local_instant(day, close_minutes, zone)
            if closes <= start or closes <= opens:
                continue
            found = True
            yield max(opens, start), closes
        closed_days = 0 if found or spans else closed_days + 1
        if closed_days > MAX_CLOSED_DAYS:
            raise ValueError(f"calendar has no opening within {MAX_CLOSED_DAYS} days of {start}")
        day += timedelta(days=1)


def add_business_seconds(calendar: Calendar, start: datetime, seconds: float) -> datetime:
    """The instant at which ``seconds`` of business time have passed since ``start``.

    Starting in closed hours, the clock starts when the calendar next opens. ``seconds`` <= 0
    returns ``start`` unchanged.
    """
    remaining = _to_micros(seconds)
    if remaining <= 0:
        return start
    if calendar is None:
        return start + timedelta(microseconds=remaining)
    for opens, closes in open_spans(calendar, start):
        length = _micros_between(opens, closes)
        if remaining <= length:
            return opens + timedelta(microseconds=remaining)
        remaining -= length
    raise AssertionError("unreachable: open_spans is endless")  # pragma: no cover


def business_seconds_between(calendar: Calendar, a: datetime, b: datetime) -> float:
    """Business seconds from ``a`` to ``b`` (negative when ``b`` is before ``a``)."""
    if b < a:
        return -business_seconds_between(calendar, b, a)
    if calendar is None:
        return _micros_between(a, b) / _MICROS
    total = 0
    for opens, closes in open_spans(calendar, a):
        if opens >= b:
            break
        total += _micros_between(opens, min(closes, b))
    return total / _MICROS


def is_open(calendar: Calendar, at: datetime) -> bool:
    """Whether ``at`` lies in an opening interval, its close instant included."""
    if calendar is None:
        return True
    for opens, _closes in open_spans(calendar, at - timedelta(microseconds=1)):
        return opens <= at
    return False  # pragma: no cover
